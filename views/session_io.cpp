#include "views/session_io.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <fstream>
#include <sstream>

#include "engine/base/error.h"
#include "engine/base/file_format.h"
#include "engine/base/fs_util.h"
#include "engine/base/version.h"
#include "views/view_image.h"

namespace pvm::studio {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
const char* kSideFile[kSides] = {"baseline", "pvm", "vismem"};

void png_sink(void* ctx, void* data, int size) { static_cast<std::string*>(ctx)->append((const char*)data, size); }

json sampling_json(const SamplingSettings& s) {
  return {{"temperature", s.temperature}, {"top_p", s.top_p}, {"top_k", s.top_k}, {"min_p", s.min_p},
          {"repetition_penalty", s.repetition_penalty}, {"seed", s.seed}};
}
}  // namespace

json token_to_json(const TokenRec& t, int index, bool heat) {
  json j = {{"i", index}, {"id", t.id}, {"piece", t.piece}, {"special", t.special}, {"mass", t.mass},
            {"mass_nosink", t.mass_nosink}};
  if (!t.mass_heads.empty()) j["mass_heads"] = t.mass_heads;
  if (!t.pvm_gate.empty()) j["pvm_gate"] = t.pvm_gate, j["pvm_ratio"] = t.pvm_ratio, j["pvm_entropy"] = t.pvm_entropy;
  if (t.lens_first >= 0) j["lens_first"] = t.lens_first;
  if (heat && !t.heat.empty()) j["heat"] = t.heat;
  if (heat && !t.pvm_heat.empty()) j["pvm_heat"] = t.pvm_heat;
  if (t.vismem_token >= 0) j["vismem_token"] = t.vismem_token;
  if (!t.invoked.empty()) j["invoked"] = t.invoked;
  if (!t.memory_mass.empty()) j["memory_mass"] = t.memory_mass;
  for (const InsertedRec& r : t.inserted)
    j["inserted"].push_back({{"type", r.type}, {"rows", r.rows}, {"start", r.start}, {"visual", r.visual},
                             {"self", r.self}, {"other", r.other}});
  return j;
}

TokenRec token_from_json(const json& j, const std::string& where) {
  try {
    if (!j.is_object()) throw Error("expected an object");
    TokenRec t;
    t.id = j.at("id").get<int64_t>();
    t.piece = j.value("piece", "");
    t.special = j.value("special", false);
    t.mass = j.at("mass").get<std::vector<float>>();
    t.mass_nosink = j.value("mass_nosink", std::vector<float>{});
    if (j.contains("mass_heads")) t.mass_heads = j["mass_heads"].get<std::vector<std::vector<float>>>();
    if (j.contains("pvm_gate")) {
      t.pvm_gate = j["pvm_gate"].get<std::vector<float>>();
      t.pvm_ratio = j.at("pvm_ratio").get<std::vector<float>>();
      t.pvm_entropy = j.at("pvm_entropy").get<std::vector<float>>();
      if (t.pvm_ratio.size() != t.pvm_gate.size() || t.pvm_entropy.size() != t.pvm_gate.size())
        throw Error("pvm_gate, pvm_ratio and pvm_entropy differ in length");
    }
    t.lens_first = j.value("lens_first", -1);
    if (j.contains("heat")) t.heat = j["heat"].get<std::vector<std::vector<float>>>();
    if (j.contains("pvm_heat")) t.pvm_heat = j["pvm_heat"].get<std::vector<std::vector<float>>>();
    t.vismem_token = j.value("vismem_token", -1);
    if (t.vismem_token < -1 || t.vismem_token > 3) throw Error("vismem_token must be -1..3");
    t.invoked = j.value("invoked", "");
    if (!t.invoked.empty() && t.invoked != "short" && t.invoked != "long") throw Error("invoked must be short or long");
    if (j.contains("memory_mass")) t.memory_mass = j["memory_mass"].get<std::vector<float>>();
    if (j.contains("inserted")) {
      for (const json& r : j.at("inserted")) {
        InsertedRec x;
        x.type = r.at("type").get<std::string>();
        x.rows = r.at("rows").get<int>();
        x.start = r.at("start").get<int>();
        x.visual = r.at("visual").get<std::vector<float>>();
        x.self = r.at("self").get<std::vector<float>>();
        x.other = r.at("other").get<std::vector<float>>();
        if (x.self.size() != x.visual.size() || x.other.size() != x.visual.size())
          throw Error("inserted: visual, self and other differ in length");
        t.inserted.push_back(std::move(x));
      }
    }
    return t;
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  } catch (const std::exception& e) {
    throw Error(where + ": bad token record (" + std::string(e.what()).substr(0, 120) + ")");
  }
}

void save_session(const std::string& dir, const UiState& ui, const std::string& preset, const json& views) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the session folder (" + ec.message() + ")");
  const GenerateSettings& s = ui.settings;
  json j;
  j["pvm_studio_session"] = 1;
  j["version"] = pvm::version();
  j["model"] = {{"dir", ui.model.dir}, {"adapter", ui.model.adapter}, {"vismem", ui.model.vismem},
                {"note", ui.model.note}, {"layers", ui.model.layers}, {"pvm_layers", ui.model.pvm_layers}};
  j["prompt"] = {{"system", s.system}, {"text", s.prompt}, {"preset", preset}};
  j["settings"] = {{"sampling", sampling_json(s.sampling)}, {"max_new_tokens", s.max_new_tokens},
                   {"stop_at_eos", s.stop_at_eos}, {"baseline", s.baseline}, {"pvm", s.pvm}, {"interleave", s.interleave},
                   {"vismem", {{"on", s.vismem}, {"invoke", s.vismem_invoke}, {"p", s.vismem_p}, {"max", s.vismem_max}}},
                   {"per_head", s.per_head}, {"heatmap", s.heatmap}, {"logit_lens", s.logit_lens},
                   {"intervention", {{"visual_scale", s.visual_scale}, {"visual_restore", s.visual_restore},
                                     {"history_window", s.history_window}}}};
  j["grid"] = {{"rows", ui.grid.rows}, {"cols", ui.grid.cols}, {"resized_w", ui.grid.resized_w},
               {"resized_h", ui.grid.resized_h}};
  if (s.image.valid()) {
    std::string png;
    if (!stbi_write_png_to_func(png_sink, &png, s.image.width, s.image.height, 3, s.image.rgb.data(), s.image.width * 3))
      throw Error(dir + "/image.png: PNG encoding failed");
    atomic_write_file(dir + "/image.png", png);
    j["image"] = {{"file", "image.png"}, {"source", s.image.source}, {"width", s.image.width}, {"height", s.image.height}};
  }
  for (int k = 0; k < kSides; ++k) {
    const SideData& sd = ui.side[k];
    // The VisMem answer only when there is one: older readers and two-arm sessions stay as they were.
    if (k == int(Side::Vismem) && sd.tokens.empty() && sd.finish.empty()) continue;
    size_t heat_floats = 0;
    for (const TokenRec& t : sd.tokens)
      for (const auto& r : t.heat) heat_floats += r.size();
    const bool heat = heat_floats <= kSessionHeatFloats;
    std::string lines;
    for (size_t i = 0; i < sd.tokens.size(); ++i) lines += token_to_json(sd.tokens[i], int(i), heat).dump() + "\n";
    const std::string trace = std::string("trace_") + kSideFile[k] + ".jsonl";
    atomic_write_file(dir + "/" + trace, lines);
    atomic_write_file(dir + "/answer_" + kSideFile[k] + ".txt", sd.text);
    j["answers"][kSideFile[k]] = {{"tokens", sd.tokens.size()}, {"finish", sd.finish}, {"tokens_per_s", sd.tokens_per_s},
                                  {"prefill_ms", sd.prefill_ms}, {"prompt_tokens", sd.prompt_tokens},
                                  {"trace", trace}, {"heatmaps", heat && heat_floats > 0}};
  }
  j["views"] = views;
  atomic_write_file(dir + "/session.json", j.dump(2) + "\n");
}

namespace {

// Typed reads of session.json fields: an absent field takes its default, a present one of another
// type (null included) or out of range is an error naming it ("settings.sampling.top_k must be an
// integer in [..], got null"), never a silent default.
struct Fields {
  const json& j;
  std::string prefix;  // "settings.sampling."
  const json* find(const char* key) const {
    if (!j.is_object()) throw Error(prefix.substr(0, prefix.empty() ? 0 : prefix.size() - 1) + " must be an object");
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
  }
  [[noreturn]] void bad(const char* key, const json& v, const std::string& want) const {
    std::string got = v.dump();
    if (got.size() > 40) got = got.substr(0, 40) + "...";
    throw Error(prefix + key + " must be " + want + ", got " + got);
  }
  const json& object(const char* key) const {
    const json* v = find(key);
    if (!v) throw Error("missing " + prefix + key);
    if (!v->is_object()) bad(key, *v, "an object");
    return *v;
  }
  std::string str(const char* key, const std::string& def = "") const {
    const json* v = find(key);
    if (!v) return def;
    if (!v->is_string()) bad(key, *v, "a string");
    return v->get<std::string>();
  }
  bool boolean(const char* key, bool def) const {
    const json* v = find(key);
    if (!v) return def;
    if (!v->is_boolean()) bad(key, *v, "true or false");
    return v->get<bool>();
  }
  int64_t integer(const char* key, int64_t def, int64_t lo, int64_t hi) const {
    const json* v = find(key);
    if (!v) return def;
    const std::string want = "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    if (!v->is_number_integer() || (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))) bad(key, *v, want);
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) bad(key, *v, want);
    return x;
  }
  double number(const char* key, double def, double lo, double hi) const {
    const json* v = find(key);
    if (!v) return def;
    char want[96];
    std::snprintf(want, sizeof want, "a number in [%g, %g]", lo, hi);
    if (!v->is_number()) bad(key, *v, want);
    const double x = v->get<double>();
    if (!(x >= lo && x <= hi)) bad(key, *v, want);
    return x;
  }
};

constexpr int64_t kSessionFormat = 1;  // "pvm_studio_session": the newest format this build reads

}  // namespace

LoadedSession load_session(const std::string& dir) {
  LoadedSession out;
  const std::string sp = dir + "/session.json";
  json j;
  try {
    j = json::parse(read_file_to_string(sp, 64 << 20, "session"));
  } catch (const Error&) {
    if (!fs::is_directory(dir)) throw Error(dir + ": no such session folder");
    throw;
  } catch (const std::exception& e) {
    throw Error(sp + ": not valid JSON (" + std::string(e.what()).substr(0, 100) + ")");
  }
  if (!j.is_object() || !j.contains("pvm_studio_session")) throw Error(sp + ": not a PVM Studio session file");
  // A newer studio may have changed what the fields mean: refuse rather than misread.
  check_file_format(j, "pvm_studio_session", kSessionFormat, sp, "session");
  try {
    UiState& ui = out.ui;
    const Fields top{j, ""};
    const Fields m{top.object("model"), "model."};
    ui.model.dir = m.str("dir");
    ui.model.adapter = m.str("adapter");
    ui.model.vismem = m.str("vismem");
    ui.model.note = m.str("note");
    ui.model.layers = int(m.integer("layers", 0, 0, 1 << 20));
    if (const json* pl = m.find("pvm_layers")) {
      if (!pl->is_array()) m.bad("pvm_layers", *pl, "a list of layer indices");
      const Fields list{*pl, "model."};
      for (const json& e : *pl) {
        if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > (1 << 20)) list.bad("pvm_layers", *pl, "a list of layer indices");
        ui.model.pvm_layers.push_back(int(e.get<int64_t>()));
      }
    }
    GenerateSettings& s = ui.settings;
    const Fields p{top.object("prompt"), "prompt."};
    s.system = p.str("system");
    s.prompt = p.str("text");
    out.preset = p.str("preset");
    const Fields st{top.object("settings"), "settings."};
    const Fields sa{st.object("sampling"), "settings.sampling."};
    // Wide enough for anything the studio wrote; generate() validates again before use.
    s.sampling.temperature = float(sa.number("temperature", 0.0, 0, 1e6));
    s.sampling.top_p = float(sa.number("top_p", 1.0, 0, 1));
    s.sampling.top_k = int(sa.integer("top_k", 0, 0, 1 << 30));
    s.sampling.min_p = float(sa.number("min_p", 0.0, 0, 1));
    s.sampling.repetition_penalty = float(sa.number("repetition_penalty", 1.0, 0, 1e6));
    s.sampling.seed = sa.integer("seed", 0, INT64_MIN, INT64_MAX);
    s.max_new_tokens = int(st.integer("max_new_tokens", 256, 1, 1 << 20));
    s.stop_at_eos = st.boolean("stop_at_eos", true);
    s.baseline = st.boolean("baseline", true);
    s.pvm = st.boolean("pvm", true);
    s.interleave = st.boolean("interleave", true);
    s.per_head = st.boolean("per_head", false);
    s.heatmap = st.boolean("heatmap", true);
    s.logit_lens = st.boolean("logit_lens", false);
    if (st.find("intervention")) {  // absent in sessions saved before it existed: off
      const Fields iv{st.object("intervention"), "settings.intervention."};
      s.visual_scale = float(iv.number("visual_scale", 1.0, 0, 1e6));  // 0: generate() refuses it
      s.visual_restore = float(iv.number("visual_restore", 0.0, -4, 4));
      s.history_window = int(iv.integer("history_window", 0, 0, 1 << 20));
    }
    if (st.find("vismem")) {
      const Fields vm{st.object("vismem"), "settings.vismem."};
      s.vismem = vm.boolean("on", true);
      s.vismem_invoke = vm.str("invoke", "model");
      if (s.vismem_invoke != "model" && s.vismem_invoke != "separators")
        throw Error("settings.vismem.invoke must be model or separators, got \"" + s.vismem_invoke + "\"");
      s.vismem_p = float(vm.number("p", 1.0, 0, 1));
      s.vismem_max = int(vm.integer("max", 4, 0, 1 << 20));
    }
    const Fields g{top.object("grid"), "grid."};
    // Bounded so rows * cols (the heatmap size the views allocate) stays sane.
    ui.grid.rows = int(g.integer("rows", 0, 0, 1 << 12)), ui.grid.cols = int(g.integer("cols", 0, 0, 1 << 12));
    ui.grid.resized_w = int(g.integer("resized_w", 0, 0, 1 << 20)), ui.grid.resized_h = int(g.integer("resized_h", 0, 0, 1 << 20));
    if (j.contains("image")) {
      const Fields im{top.object("image"), "image."};
      const std::string file = im.str("file");
      if (file.empty()) throw Error("image.file must name the image file");
      const std::string ip = dir + "/" + file;
      std::string err;  // the studio's one image loader (same checks as the CLI)
      if (!load_image_file(ip, &s.image, &err)) throw Error(err + " (session image)");
      s.image.source = im.str("source", ip);
    }
    const Fields answers{top.object("answers"), "answers."};
    for (int k = 0; k < kSides; ++k) {
      if (k == int(Side::Vismem) && !answers.find(kSideFile[k])) continue;  // a two-arm session
      const Fields a{answers.object(kSideFile[k]), std::string("answers.") + kSideFile[k] + "."};
      SideData& sd = ui.side[k];
      sd.finish = a.str("finish");
      sd.tokens_per_s = a.number("tokens_per_s", 0.0, 0, 1e12);
      sd.prefill_ms = a.number("prefill_ms", 0.0, 0, 1e12);
      sd.prompt_tokens = a.integer("prompt_tokens", 0, 0, INT64_MAX);
      const size_t want = size_t(a.integer("tokens", 0, 0, INT64_MAX));
      const std::string tp = dir + "/" + a.str("trace", std::string("trace_") + kSideFile[k] + ".jsonl");
      std::unique_ptr<InputFile> f;
      try {
        f = std::make_unique<InputFile>(tp, "trace");
      } catch (const Error& e) {
        throw Error(std::string(e.what()) + (path_exists(tp) ? "" : " (missing trace file)"));
      }
      std::string line;
      int no = 0;
      while (std::getline(f->stream(), line)) {
        ++no;
        if (line.empty()) continue;
        json tj;
        try {
          tj = json::parse(line);
        } catch (const std::exception&) {
          throw Error(tp + ":" + std::to_string(no) + ": not valid JSON (truncated file?)");
        }
        sd.tokens.push_back(token_from_json(tj, tp + ":" + std::to_string(no)));
        if (!sd.tokens.back().special) sd.text += sd.tokens.back().piece;
      }
      f->finish();
      if (sd.tokens.size() != want)
        throw Error(tp + ": " + std::to_string(sd.tokens.size()) + " tokens, session.json says " + std::to_string(want));
    }
    const json* views = top.find("views");
    if (views && !views->is_object()) top.bad("views", *views, "an object");
    out.views = views ? *views : json::object();
    ui.restored = true;
  } catch (const Error& e) {
    const std::string w = e.what();
    if (w.rfind(dir, 0) == 0) throw;
    throw Error(sp + ": " + w);
  } catch (const std::exception& e) {
    throw Error(sp + ": missing or malformed field (" + std::string(e.what()).substr(0, 120) + ")");
  }
  return out;
}

}  // namespace pvm::studio
