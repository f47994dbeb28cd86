#include "views/session_io.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/version.h"
#include "views/view_image.h"

namespace pvm::studio {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
const char* kSideFile[2] = {"baseline", "pvm"};

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
  j["model"] = {{"dir", ui.model.dir}, {"adapter", ui.model.adapter}, {"note", ui.model.note},
                {"layers", ui.model.layers}, {"pvm_layers", ui.model.pvm_layers}};
  j["prompt"] = {{"system", s.system}, {"text", s.prompt}, {"preset", preset}};
  j["settings"] = {{"sampling", sampling_json(s.sampling)}, {"max_new_tokens", s.max_new_tokens},
                   {"baseline", s.baseline}, {"pvm", s.pvm}, {"interleave", s.interleave},
                   {"per_head", s.per_head}, {"heatmap", s.heatmap}, {"logit_lens", s.logit_lens}};
  j["grid"] = {{"rows", ui.grid.rows}, {"cols", ui.grid.cols}, {"resized_w", ui.grid.resized_w},
               {"resized_h", ui.grid.resized_h}};
  if (s.image.valid()) {
    std::string png;
    if (!stbi_write_png_to_func(png_sink, &png, s.image.width, s.image.height, 3, s.image.rgb.data(), s.image.width * 3))
      throw Error(dir + "/image.png: PNG encoding failed");
    atomic_write_file(dir + "/image.png", png);
    j["image"] = {{"file", "image.png"}, {"source", s.image.source}, {"width", s.image.width}, {"height", s.image.height}};
  }
  for (int k = 0; k < 2; ++k) {
    const SideData& sd = ui.side[k];
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

LoadedSession load_session(const std::string& dir) {
  LoadedSession out;
  const std::string sp = dir + "/session.json";
  json j;
  try {
    j = json::parse(read_file_to_string(sp, 64 << 20));
  } catch (const Error&) {
    if (!fs::is_directory(dir)) throw Error(dir + ": no such session folder");
    throw;
  } catch (const std::exception& e) {
    throw Error(sp + ": not valid JSON (" + std::string(e.what()).substr(0, 100) + ")");
  }
  try {
    if (!j.is_object() || !j.contains("pvm_studio_session")) throw Error("not a PVM Studio session file");
    UiState& ui = out.ui;
    const json& m = j.at("model");
    ui.model.dir = m.value("dir", "");
    ui.model.adapter = m.value("adapter", "");
    ui.model.note = m.value("note", "");
    ui.model.layers = m.value("layers", 0);
    ui.model.pvm_layers = m.value("pvm_layers", std::vector<int>{});
    GenerateSettings& s = ui.settings;
    const json& p = j.at("prompt");
    s.system = p.value("system", "");
    s.prompt = p.value("text", "");
    out.preset = p.value("preset", "");
    const json& st = j.at("settings");
    const json& sa = st.at("sampling");
    s.sampling.temperature = sa.value("temperature", 0.0f);
    s.sampling.top_p = sa.value("top_p", 1.0f);
    s.sampling.top_k = sa.value("top_k", 0);
    s.sampling.min_p = sa.value("min_p", 0.0f);
    s.sampling.repetition_penalty = sa.value("repetition_penalty", 1.0f);
    s.sampling.seed = sa.value("seed", int64_t(0));
    s.max_new_tokens = st.value("max_new_tokens", 256);
    s.baseline = st.value("baseline", true);
    s.pvm = st.value("pvm", true);
    s.interleave = st.value("interleave", true);
    s.per_head = st.value("per_head", false);
    s.heatmap = st.value("heatmap", true);
    s.logit_lens = st.value("logit_lens", false);
    const json& g = j.at("grid");
    ui.grid.rows = g.value("rows", 0), ui.grid.cols = g.value("cols", 0);
    ui.grid.resized_w = g.value("resized_w", 0), ui.grid.resized_h = g.value("resized_h", 0);
    if (j.contains("image")) {
      const json& im = j["image"];
      const std::string ip = dir + "/" + im.at("file").get<std::string>();
      std::string err;  // the studio's one image loader (same checks as the CLI)
      if (!load_image_file(ip, &s.image, &err)) throw Error(err + " (session image)");
      s.image.source = im.value("source", ip);
    }
    for (int k = 0; k < 2; ++k) {
      const json& a = j.at("answers").at(kSideFile[k]);
      SideData& sd = ui.side[k];
      sd.finish = a.value("finish", "");
      sd.tokens_per_s = a.value("tokens_per_s", 0.0);
      sd.prefill_ms = a.value("prefill_ms", 0.0);
      sd.prompt_tokens = a.value("prompt_tokens", int64_t(0));
      const std::string tp = dir + "/" + a.value("trace", std::string("trace_") + kSideFile[k] + ".jsonl");
      std::ifstream f(tp);
      if (!f) throw Error(tp + ": missing trace file");
      std::string line;
      int no = 0;
      while (std::getline(f, line)) {
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
      const size_t want = a.value("tokens", size_t(0));
      if (sd.tokens.size() != want)
        throw Error(tp + ": " + std::to_string(sd.tokens.size()) + " tokens, session.json says " + std::to_string(want));
    }
    out.views = j.value("views", json::object());
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
