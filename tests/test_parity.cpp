// Parity with Hugging Face transformers' Qwen3-VL.
//
// scripts/gpu/make_parity_fixtures.py builds a tiny random Qwen3-VL in transformers (f32), runs it
// on a machine that has transformers, and writes tests/data/parity/ (format: that script's
// docstring; how to run it: scripts/gpu/README.md). These tests load the same checkpoint, PNGs and
// inputs into our engine and compare:
//
//   preprocessing  our load_image + preprocess with the fixture's preprocessor_config.json against
//                  the HF processor's pixel_values: |ours - HF| <= one uint8 level everywhere, i.e.
//                  2/255 in normalized units (x_norm = (x - 127.5) / 127.5), and at most 1% of the
//                  values may differ by more than 1e-5. Our resize is meant to be bit-identical to
//                  torch's uint8 antialiased bicubic; the slack admits a rare rounding tie, not a
//                  shifted or blurred image. grid_thw must be equal, and so must smart_resize on the
//                  extra cases the fixture took from HF's own function.
//   vision tower   merged output + DeepStack features on the fixture's pixel_values: max |diff| <= 1e-4
//   decoder        logits at every position of prompt + greedy continuation: max |diff| <= 1e-4;
//                  pvm::rope_index position ids and rope deltas equal; pvm::generate's 32 greedy ids
//                  equal (stop ids that are never produced). The fixture's greedy steps have a
//                  top-1/top-2 margin >= 2e-4, so logits within 1e-4 must give the same ids.
//   tokenizer      our ids equal HF `tokenizers` ids on tests/tokenizer/corpus.jsonl, when the
//                  fixture has tokenizer_ids.jsonl.
//
// Without tests/data/parity/meta.json (PVM_TEST_DATA, else the source tree) the fixture tests skip.
// Parity.SelfCheckWithOurOwnDump always runs: it writes a fixture in the same format from our own
// engine, runs the same comparison functions on it (they must pass), then corrupts it piece by piece
// and checks that each comparison notices.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/base/error.h"
#include "engine/base/tokenizer.h"
#include "engine/base/version.h"
#include "engine/generate.h"
#include "engine/image.h"
#include "engine/image_write.h"
#include "engine/loader.h"
#include "engine/rope.h"
#include "engine/tensor_io.h"
#include "test_util.h"
#include "tests/tokenizer/qwen_fixture.h"

using namespace pvm;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "pvm-parity-v1";
constexpr double kPixelTol = 2.0 / 255.0 + 1e-6;  // one uint8 level in normalized units
constexpr double kPixelSame = 1e-5;               // "equal" for the count of differing values
constexpr double kPixelMaxDifferingFraction = 0.01;
constexpr double kVisionTol = 1e-4;
constexpr double kLogitTol = 1e-4;

std::string parity_dir() {
  const char* env = std::getenv("PVM_TEST_DATA");
  std::string base = (env && *env) ? std::string(env) : pvm::source_dir() + "/tests/data";
  return base + "/parity";
}

template <typename T>
std::string vec_str(const std::vector<T>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::string fmt(double v) {
  std::ostringstream s;
  s.precision(3);
  s << std::scientific << v;
  return s.str();
}

// Problems found by one comparison (empty = parity) plus notes worth printing either way.
struct Report {
  std::string what;
  std::vector<std::string> problems, notes;
  void fail(const std::string& s) { problems.push_back(what + ": " + s); }
  void note(const std::string& s) { notes.push_back(what + ": " + s); }
  bool ok() const { return problems.empty(); }
};

void expect_ok(const Report& r) {
  for (auto& n : r.notes) std::cout << "[ parity   ] " << n << "\n";
  std::string all;
  for (auto& p : r.problems) all += "\n  " + p;
  EXPECT_TRUE(r.ok()) << r.problems.size() << " problem(s):" << all;
}

// ---------------------------------------------------------------------------------------------
// Fixture loading
// ---------------------------------------------------------------------------------------------
struct Fixture {
  std::string dir;
  json meta;
  std::map<std::string, torch::Tensor> t;

  std::string path(const std::string& rel) const { return (fs::path(dir) / rel).string(); }
  torch::Tensor get(const std::string& name) const {
    auto it = t.find(name);
    if (it == t.end()) throw Error(path("fixtures.safetensors") + ": no tensor '" + name + "'");
    return it->second;
  }
  const json& prompt(const std::string& name) const {
    for (auto& p : meta.at("prompts"))
      if (p.at("name") == name) return p;
    throw Error(path("meta.json") + ": no prompt '" + name + "'");
  }
};

json read_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open");
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    throw Error(path + ": invalid JSON (" + e.what() + ")");
  }
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) throw Error(path + ": cannot write");
}

Fixture load_fixture(const std::string& dir) {
  Fixture f;
  f.dir = dir;
  f.meta = read_json(f.path("meta.json"));
  if (f.meta.value("format", "") != kFormat)
    throw Error(f.path("meta.json") + ": format is " + f.meta.value("format", std::string("missing")) + ", expected " +
                kFormat);
  f.t = load_tensors(f.path("fixtures.safetensors"));
  if (f.meta.contains("tensors"))
    for (auto& [name, info] : f.meta["tensors"].items()) {
      auto tensor = f.get(name);
      if (tensor.sizes().vec() != info.at("shape").get<std::vector<int64_t>>())
        throw Error(f.path("fixtures.safetensors") + ": tensor '" + name + "' has shape " + c10::str(tensor.sizes()) +
                    ", meta.json says " + info.at("shape").dump());
    }
  return f;
}

std::vector<int64_t> to_ids(const torch::Tensor& t) {
  auto c = t.to(torch::kLong).contiguous().view({-1});
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// Pixels and grids of a list of fixture images, as a prompt or a vision call uses them.
struct ImageSet {
  torch::Tensor pixels, grid_thw;
  std::vector<std::array<int64_t, 3>> grids;
};

ImageSet image_set(const Fixture& fx, const json& indices) {
  ImageSet s;
  std::vector<torch::Tensor> px, gr;
  for (auto& k : indices) {
    auto key = "image" + std::to_string(k.get<int64_t>());
    px.push_back(fx.get(key + ".pixel_values").to(torch::kFloat));
    auto g = fx.get(key + ".grid_thw").to(torch::kLong).view({-1, 3});
    gr.push_back(g);
    for (int64_t r = 0; r < g.size(0); ++r)
      s.grids.push_back({g[r][0].item<int64_t>(), g[r][1].item<int64_t>(), g[r][2].item<int64_t>()});
  }
  s.pixels = torch::cat(px, 0);
  s.grid_thw = torch::cat(gr, 0);
  return s;
}

// max |a - b| and where (flat index), or a problem when shapes differ
bool compare_close(Report& r, const std::string& name, const torch::Tensor& ours, const torch::Tensor& ref,
                   double tol) {
  if (ours.sizes() != ref.sizes()) {
    r.fail(name + " has shape " + c10::str(ours.sizes()) + ", HF " + c10::str(ref.sizes()));
    return false;
  }
  auto d = (ours.to(torch::kCPU, torch::kFloat) - ref.to(torch::kFloat)).abs().contiguous().view({-1});
  auto mx = d.max();
  double m = mx.item<double>();
  int64_t at = d.argmax().item<int64_t>();
  std::string msg = name + " max |diff| " + fmt(m) + " at flat index " + std::to_string(at) + " (|ref| max " +
                    fmt(ref.abs().max().item<double>()) + ")";
  if (!(m <= tol)) {
    r.fail(msg + " > " + fmt(tol));
    return false;
  }
  r.note(msg);
  return true;
}

// ---------------------------------------------------------------------------------------------
// The comparisons (shared by the HF fixture tests and the self-check)
// ---------------------------------------------------------------------------------------------
Report check_preprocessing(const Fixture& fx) {
  Report r{"preprocessing"};
  auto pc = PreprocessorConfig::load(fx.path(fx.meta.at("preprocessor_config").get<std::string>()));
  const auto& images = fx.meta.at("images");
  for (size_t k = 0; k < images.size(); ++k) {
    const auto& im = images[k];
    std::string file = im.at("file").get<std::string>(), key = "image" + std::to_string(k);
    auto img = load_image(fx.path(file));
    if (img.height != im.at("height").get<int>() || img.width != im.at("width").get<int>()) {
      r.fail(file + " decodes to " + std::to_string(img.width) + "x" + std::to_string(img.height) + ", meta.json says " +
             std::to_string(im.at("width").get<int>()) + "x" + std::to_string(im.at("height").get<int>()));
      continue;
    }
    auto p = preprocess(img, pc);
    auto ref_grid = to_ids(fx.get(key + ".grid_thw"));
    std::vector<int64_t> grid{p.grid_t, p.grid_h, p.grid_w};
    if (grid != ref_grid) {
      r.fail(file + ": grid_thw " + vec_str(grid) + ", HF " + vec_str(ref_grid));
      continue;
    }
    auto ref = fx.get(key + ".pixel_values").to(torch::kFloat);
    if (p.pixel_values.sizes() != ref.sizes()) {
      r.fail(file + ": pixel_values shape " + c10::str(p.pixel_values.sizes()) + ", HF " + c10::str(ref.sizes()));
      continue;
    }
    auto d = (p.pixel_values - ref).abs();
    double mx = d.max().item<double>();
    int64_t off = (d > kPixelSame).sum().item<int64_t>();
    double frac = double(off) / double(d.numel());
    std::string msg = file + " (" + std::to_string(img.height) + "x" + std::to_string(img.width) + " -> " +
                      std::to_string(p.resized_h) + "x" + std::to_string(p.resized_w) + ", grid " + vec_str(grid) +
                      "): max |diff| " + fmt(mx) + ", " + std::to_string(off) + " of " + std::to_string(d.numel()) +
                      " values differ by > " + fmt(kPixelSame);
    if (!(mx <= kPixelTol)) r.fail(msg + "; more than one uint8 level (" + fmt(kPixelTol) + ")");
    else if (frac > kPixelMaxDifferingFraction) r.fail(msg + "; more than 1% differ");
    else r.note(msg);
  }
  return r;
}

Report check_smart_resize(const Fixture& fx) {
  Report r{"smart_resize"};
  if (!fx.meta.contains("smart_resize_cases") || fx.meta["smart_resize_cases"].is_null()) {
    r.note("the fixture has no smart_resize cases");
    return r;
  }
  int n = 0;
  for (auto& c : fx.meta["smart_resize_cases"]) {
    int64_t h = c.at("height"), w = c.at("width"), f = c.at("factor"), lo = c.at("min_pixels"), hi = c.at("max_pixels");
    std::string args = "smart_resize(" + std::to_string(h) + ", " + std::to_string(w) + ", factor " + std::to_string(f) +
                       ", min " + std::to_string(lo) + ", max " + std::to_string(hi) + ")";
    bool hf_error = c.value("error", false);
    try {
      auto [rh, rw] = smart_resize(h, w, f, lo, hi);
      if (hf_error)
        r.fail(args + " = " + std::to_string(rh) + "x" + std::to_string(rw) + ", HF raises an error");
      else if (std::vector<int64_t>{rh, rw} != c.at("resized").get<std::vector<int64_t>>())
        r.fail(args + " = " + std::to_string(rh) + "x" + std::to_string(rw) + ", HF " + c.at("resized").dump());
    } catch (const Error& e) {
      if (!hf_error) r.fail(args + " throws (" + e.what() + "), HF gives " + c.at("resized").dump());
    }
    ++n;
  }
  r.note(std::to_string(n) + " cases compared");
  return r;
}

Report check_vision(const Fixture& fx, Qwen3VLForConditionalGeneration& m) {
  Report r{"vision"};
  torch::NoGradGuard ng;
  for (auto& v : fx.meta.at("vision")) {
    std::string name = v.at("name");
    auto s = image_set(fx, v.at("images"));
    auto out = m->model->visual->forward(s.pixels, s.grid_thw);
    compare_close(r, name + ".merged", out.merged, fx.get(name + ".merged"), kVisionTol);
    int64_t n_ref = 0;
    while (fx.t.count(name + ".deepstack." + std::to_string(n_ref))) ++n_ref;
    if (n_ref != (int64_t)out.deepstack.size()) {
      r.fail(name + ": " + std::to_string(out.deepstack.size()) + " deepstack features, HF " + std::to_string(n_ref));
      continue;
    }
    for (int64_t j = 0; j < n_ref; ++j) {
      std::string key = name + ".deepstack." + std::to_string(j);
      compare_close(r, key, out.deepstack[j], fx.get(key), kVisionTol);
    }
  }
  return r;
}

Report check_prompt(const Fixture& fx, Qwen3VLForConditionalGeneration& m, const std::string& name) {
  Report r{"prompt " + name};
  const auto& meta = fx.prompt(name);
  const auto& cfg = m->config();
  auto prompt = to_ids(fx.get(name + ".prompt_ids"));
  auto gen_ref = to_ids(fx.get(name + ".generated_ids"));
  if (meta.contains("prompt_ids") && meta["prompt_ids"].get<std::vector<int64_t>>() != prompt)
    r.fail("meta.json prompt_ids disagree with " + name + ".prompt_ids");
  auto s = image_set(fx, meta.at("images"));
  const int64_t S = prompt.size();

  // 1. position ids and rope deltas
  auto ri = rope_index({prompt}, s.grids, cfg);
  auto ref_pos = fx.get(name + ".position_ids").to(torch::kLong);
  auto ours_pos = ri.position_ids.select(1, 0);
  if (ours_pos.sizes() != ref_pos.sizes()) {
    r.fail("position ids shape " + c10::str(ours_pos.sizes()) + ", HF " + c10::str(ref_pos.sizes()));
  } else if (!torch::equal(ours_pos, ref_pos)) {
    auto ne = (ours_pos != ref_pos).nonzero();
    int64_t a = ne[0][0].item<int64_t>(), p = ne[0][1].item<int64_t>();
    r.fail(std::to_string(ne.size(0)) + " position ids differ; first: stream " + std::to_string(a) + " position " +
           std::to_string(p) + ": ours " + std::to_string(ours_pos[a][p].item<int64_t>()) + ", HF " +
           std::to_string(ref_pos[a][p].item<int64_t>()));
  }
  auto ref_delta = to_ids(fx.get(name + ".rope_deltas"));
  if (ri.rope_deltas != ref_delta)
    r.fail("rope delta " + vec_str(ri.rope_deltas) + ", HF " + vec_str(ref_delta));
  else
    r.note("position ids equal (" + std::to_string(S) + " tokens), rope delta " + std::to_string(ref_delta[0]));

  // 2. logits of one forward over prompt + HF's greedy continuation
  {
    torch::NoGradGuard ng;
    auto seq = prompt;
    seq.insert(seq.end(), gen_ref.begin(), gen_ref.end());
    ForwardInput in;
    in.input_ids = torch::tensor(seq, torch::kLong).view({1, -1});
    in.pixel_values = s.pixels;
    in.grids = s.grids;
    in.all_logits = true;
    ForwardState st;
    auto logits = m->forward(in, st).logits[0].to(torch::kCPU, torch::kFloat);
    auto ref = fx.get(name + ".logits").to(torch::kFloat);
    if (compare_close(r, "logits", logits, ref, kLogitTol)) {
      auto row = (logits - ref).abs().amax(1);
      r.note("logits max |diff| over the prompt " + fmt(row.slice(0, 0, S).max().item<double>()) +
             ", over the continuation " + fmt(row.slice(0, S).max().item<double>()));
    } else if (logits.sizes() == ref.sizes()) {
      auto row = (logits - ref).abs().amax(1);
      int64_t first = (row > kLogitTol).nonzero()[0][0].item<int64_t>();
      r.fail("first position over tolerance: " + std::to_string(first) + " (prompt has " + std::to_string(S) +
             " tokens; token there " + std::to_string(seq[first]) + ")");
    }
  }

  // 3. greedy generation with our KV-cache decode
  GenerationRequest req;
  req.prompt_ids = prompt;
  req.pixel_values = s.pixels;
  req.grids = s.grids;
  req.max_new_tokens = (int64_t)gen_ref.size();
  req.stop_ids = {cfg.text.vocab_size};  // an id the model cannot produce: never stops early
  auto res = generate(m, req);
  const auto& got = res.tokens.at(0);
  if (got != gen_ref) {
    size_t i = 0;
    while (i < got.size() && i < gen_ref.size() && got[i] == gen_ref[i]) ++i;
    r.fail("greedy ids differ from step " + std::to_string(i) + ": ours " + vec_str(got) + ", HF " + vec_str(gen_ref));
  } else {
    r.note(std::to_string(got.size()) + " greedy ids equal" +
           (meta.contains("min_greedy_margin") ? " (HF min top-1/top-2 margin " + fmt(meta["min_greedy_margin"].get<double>()) + ")"
                                              : std::string()));
  }
  return r;
}

Report check_tokenizer(const Fixture& fx, const Tokenizer& tok) {
  Report r{"tokenizer"};
  const auto& tm = fx.meta.at("tokenizer");
  auto tok_bytes = (int64_t)fs::file_size(tok.source());
  if (tm.contains("tokenizer_json_bytes") && tm["tokenizer_json_bytes"].get<int64_t>() != tok_bytes) {
    r.fail(tok.source() + " has " + std::to_string(tok_bytes) + " bytes, the fixture was made with a tokenizer.json of " +
           tm["tokenizer_json_bytes"].dump() + " bytes (sha256 " + tm.value("tokenizer_json_sha256", std::string("?")) +
           "): regenerate the fixture or install the same tokenizer");
    return r;
  }
  std::string corpus = tm.at("corpus").get<std::string>();
  if (!fs::path(corpus).is_absolute()) corpus = (fs::path(pvm::source_dir()) / corpus).string();
  std::map<int64_t, std::string> text;
  for (auto& line : pvm_test::read_lines(corpus)) {
    auto j = json::parse(line);
    text[j.at("i").get<int64_t>()] = pvm_test::b64decode(j.at("b64").get<std::string>());
  }
  int64_t n = 0, bad = 0;
  for (auto& line : pvm_test::read_lines(fx.path(tm.at("file").get<std::string>()))) {
    auto j = json::parse(line);
    int64_t i = j.at("i").get<int64_t>();
    auto ref = j.at("ids").get<std::vector<int32_t>>();
    auto it = text.find(i);
    if (it == text.end()) {
      r.fail("string " + std::to_string(i) + " is not in " + corpus);
      continue;
    }
    auto ours = tok.encode(it->second);
    ++n;
    if (ours != ref && ++bad <= 5)
      r.fail("string " + std::to_string(i) + ": ours " + vec_str(ours) + ", HF " + vec_str(ref));
  }
  if (bad > 5) r.fail("... " + std::to_string(bad) + " strings differ in all");
  if (tm.contains("count") && tm["count"].get<int64_t>() != n)
    r.fail("compared " + std::to_string(n) + " strings, meta.json says " + tm["count"].dump());
  if (bad == 0) r.note(std::to_string(n) + " strings tokenize equal");
  return r;
}

// ---------------------------------------------------------------------------------------------
// The HF fixture (loaded once per test binary)
// ---------------------------------------------------------------------------------------------
struct HfFixture {
  bool present = false;
  std::string error, model_error;  // loading the fixture / loading its model
  Fixture fx;
  LoadedModel lm;
};

const HfFixture& hf_fixture() {
  static HfFixture h = [] {
    HfFixture r;
    std::string dir = parity_dir();
    if (!fs::exists(fs::path(dir) / "meta.json")) return r;
    r.present = true;
    try {
      r.fx = load_fixture(dir);
    } catch (const std::exception& e) {
      r.error = e.what();
      return r;
    }
    try {  // a model that does not load fails the model tests only
      r.lm = load_model(r.fx.path(r.fx.meta.at("model_dir").get<std::string>()), LoadOptions{});
    } catch (const std::exception& e) {
      r.model_error = e.what();
    }
    return r;
  }();
  return h;
}

#define PVM_REQUIRE_PARITY_FIXTURE(var)                                                                        \
  const auto& var = hf_fixture();                                                                              \
  if (!var.present)                                                                                            \
    GTEST_SKIP() << "no transformers parity fixtures at " << parity_dir()                                      \
                 << "/meta.json: they are generated by scripts/gpu/make_parity_fixtures.py on a machine with " \
                    "transformers (see scripts/gpu/README.md)";                                                \
  ASSERT_TRUE(var.error.empty()) << "cannot load the parity fixtures: " << var.error

#define PVM_REQUIRE_PARITY_MODEL(var) \
  PVM_REQUIRE_PARITY_FIXTURE(var);    \
  ASSERT_TRUE(var.model_error.empty()) << "cannot load the parity model: " << var.model_error

// ---------------------------------------------------------------------------------------------
// Our own dump in the same format (for the self-check)
// ---------------------------------------------------------------------------------------------
ModelConfig selfcheck_config() {
  auto c = pvm::testing::tiny_config();
  c.vision.depth = 2;
  c.vision.deepstack_visual_indexes = {0, 1};
  c.validate("parity self-check");
  return c;
}

const char* kPreprocessorJson = R"({
 "size": {"shortest_edge": 4096, "longest_edge": 65536},
 "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
 "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
 "do_resize": true, "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true,
 "do_convert_rgb": true, "resample": 3,
 "image_processor_type": "Qwen2VLImageProcessorFast", "processor_class": "Qwen3VLProcessor"
})";

ImageRGB test_image(int k, int h, int w) {
  ImageRGB im;
  im.width = w, im.height = h;
  im.rgb.resize((size_t)w * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &im.rgb[((size_t)y * w + x) * 3];
      bool disc = (y - h / 2) * (y - h / 2) + (x - w / 3) * (x - w / 3) <= (std::min(h, w) / 3) * (std::min(h, w) / 3);
      p[0] = disc ? 200 : (uint8_t)(x * 255 / std::max(1, w - 1));
      p[1] = disc ? 40 * k : (uint8_t)(y * 255 / std::max(1, h - 1));
      p[2] = (uint8_t)(((x * 73856093) ^ (y * 19349663)) & 0xFF);
    }
  return im;
}

// The same prompt layout as the script: text, then per image <vision_start> pads <vision_end>.
std::vector<int64_t> build_prompt(const ModelConfig& c, const std::vector<int64_t>& before,
                                  const std::vector<int64_t>& between, const std::vector<int64_t>& after,
                                  const std::vector<std::array<int64_t, 3>>& grids) {
  std::vector<int64_t> ids = before;
  for (size_t n = 0; n < grids.size(); ++n) {
    ids.push_back(c.vision_start_token_id);
    int64_t pads = grids[n][0] * grids[n][1] * grids[n][2] / (c.vision.spatial_merge_size * c.vision.spatial_merge_size);
    ids.insert(ids.end(), pads, c.image_token_id);
    ids.push_back(c.vision_end_token_id);
    if (n + 1 < grids.size()) ids.insert(ids.end(), between.begin(), between.end());
  }
  ids.insert(ids.end(), after.begin(), after.end());
  return ids;
}

// Writes <dir> in the fixture format, every reference computed by our engine. With `tok`, also
// tokenizer_ids.jsonl for the first strings of the corpus.
void write_own_fixture(const std::string& dir, const Tokenizer* tok) {
  torch::NoGradGuard ng;
  fs::create_directories(fs::path(dir) / "tiny_model");
  fs::create_directories(fs::path(dir) / "images");
  auto cfg = selfcheck_config();
  auto m = make_random_model(cfg, 11, torch::kFloat, torch::kCPU);
  // as in the script: greedy must never emit an id >= 300 (an <|image_pad|> in the continuation
  // would not match the images of the full-sequence forward)
  m->lm_head->weight.slice(0, 300).mul_(0.05);
  save_model(m, (fs::path(dir) / "tiny_model").string(), torch::kFloat);
  write_text((fs::path(dir) / "tiny_model" / "preprocessor_config.json").string(), kPreprocessorJson);
  auto pc = PreprocessorConfig::load((fs::path(dir) / "tiny_model" / "preprocessor_config.json").string());

  json meta = {{"format", kFormat},
               {"generator", "tests/test_parity.cpp (self-check: our engine)"},
               {"model_dir", "tiny_model"},
               {"preprocessor_config", "tiny_model/preprocessor_config.json"},
               {"new_tokens", 32}};
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  const std::vector<std::array<int, 2>> sizes{{64, 96}, {130, 200}, {24, 90}};
  std::vector<std::array<int64_t, 3>> grids;
  for (size_t k = 0; k < sizes.size(); ++k) {
    std::string file = "images/img" + std::to_string(k) + ".png";
    write_png((fs::path(dir) / file).string(), test_image((int)k, sizes[k][0], sizes[k][1]));
    auto p = preprocess(load_image((fs::path(dir) / file).string()), pc);
    tensors.push_back({"image" + std::to_string(k) + ".pixel_values", p.pixel_values});
    tensors.push_back({"image" + std::to_string(k) + ".grid_thw", p.grid_thw()});
    grids.push_back({p.grid_t, p.grid_h, p.grid_w});
    meta["images"].push_back({{"file", file},
                              {"height", sizes[k][0]},
                              {"width", sizes[k][1]},
                              {"grid_thw", {p.grid_t, p.grid_h, p.grid_w}},
                              {"num_tokens", p.num_tokens()}});
  }
  auto pixels_of = [&](const std::vector<int64_t>& ks) {
    std::vector<torch::Tensor> px, gr;
    std::vector<std::array<int64_t, 3>> g;
    for (auto k : ks) {
      for (auto& [n, t] : tensors) {
        if (n == "image" + std::to_string(k) + ".pixel_values") px.push_back(t);
        if (n == "image" + std::to_string(k) + ".grid_thw") gr.push_back(t);
      }
      g.push_back(grids[k]);
    }
    return std::make_tuple(torch::cat(px), torch::cat(gr), g);
  };
  for (auto& [name, ks] : std::vector<std::pair<std::string, std::vector<int64_t>>>{{"vision_img0", {0}},
                                                                                     {"vision_all", {0, 1, 2}}}) {
    auto [px, gr, g] = pixels_of(ks);
    auto out = m->model->visual->forward(px, gr);
    tensors.push_back({name + ".merged", out.merged});
    for (size_t j = 0; j < out.deepstack.size(); ++j)
      tensors.push_back({name + ".deepstack." + std::to_string(j), out.deepstack[j]});
    meta["vision"].push_back({{"name", name}, {"images", ks}, {"deepstack", out.deepstack.size()}});
  }
  struct P {
    std::string name;
    std::vector<int64_t> images, before, between, after;
  };
  for (auto& p : std::vector<P>{{"p1", {0}, {10, 11, 12, 13}, {}, {20, 21, 22, 23}},
                                {"p2", {1, 2}, {15, 16}, {42, 43}, {30, 31, 32, 33, 34}}}) {
    auto [px, gr, g] = pixels_of(p.images);
    auto ids = build_prompt(cfg, p.before, p.between, p.after, g);
    auto ri = rope_index({ids}, g, cfg);
    GenerationRequest req;
    req.prompt_ids = ids;
    req.pixel_values = px;
    req.grids = g;
    req.max_new_tokens = 32;
    req.stop_ids = {cfg.text.vocab_size};
    auto gen = generate(m, req).tokens[0];
    auto seq = ids;
    seq.insert(seq.end(), gen.begin(), gen.end());
    ForwardInput in;
    in.input_ids = torch::tensor(seq, torch::kLong).view({1, -1});
    in.pixel_values = px;
    in.grids = g;
    in.all_logits = true;
    ForwardState st;
    auto logits = m->forward(in, st).logits[0];
    tensors.push_back({p.name + ".prompt_ids", torch::tensor(ids, torch::kLong)});
    tensors.push_back({p.name + ".generated_ids", torch::tensor(gen, torch::kLong)});
    tensors.push_back({p.name + ".logits", logits});
    tensors.push_back({p.name + ".position_ids", ri.position_ids.select(1, 0).contiguous()});
    tensors.push_back({p.name + ".rope_deltas", torch::tensor(ri.rope_deltas, torch::kLong)});
    meta["prompts"].push_back({{"name", p.name},
                               {"images", p.images},
                               {"prompt_ids", ids},
                               {"generated_ids", gen},
                               {"prompt_length", ids.size()},
                               {"sequence_length", seq.size()},
                               {"rope_delta", ri.rope_deltas[0]}});
  }
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{64, 96}, {130, 200}, {24, 90}, {32, 6500}, {1080, 1920}}) {
    json c = {{"height", h}, {"width", w}, {"factor", 32}, {"min_pixels", 4096}, {"max_pixels", 65536}};
    try {
      auto [rh, rw] = smart_resize(h, w, 32, 4096, 65536);
      c["resized"] = {rh, rw};
    } catch (const Error&) {
      c["error"] = true;
    }
    meta["smart_resize_cases"].push_back(c);
  }
  meta["tokenizer"] = nullptr;
  if (tok) {
    std::string corpus = "tests/tokenizer/corpus.jsonl";
    auto lines = pvm_test::read_lines((fs::path(pvm::source_dir()) / corpus).string());
    std::ofstream f(fs::path(dir) / "tokenizer_ids.jsonl", std::ios::binary);
    int64_t n = 0;
    for (size_t i = 0; i < lines.size() && i < 300; ++i, ++n) {
      auto j = json::parse(lines[i]);
      auto ids = tok->encode(pvm_test::b64decode(j.at("b64").get<std::string>()));
      f << json{{"i", j.at("i")}, {"ids", ids}}.dump() << "\n";
    }
    meta["tokenizer"] = {{"file", "tokenizer_ids.jsonl"},
                         {"corpus", corpus},
                         {"count", n},
                         {"tokenizer_json_bytes", (int64_t)fs::file_size(tok->source())}};
  }
  for (auto& [n, t] : tensors)
    meta["tensors"][n] = {{"dtype", c10::toString(t.scalar_type())}, {"shape", t.sizes().vec()}};
  save_tensors((fs::path(dir) / "fixtures.safetensors").string(), tensors, {{"format", kFormat}});
  write_text((fs::path(dir) / "meta.json").string(), meta.dump(1) + "\n");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Against the transformers fixtures (skip when absent)
// ---------------------------------------------------------------------------------------------
TEST(Parity, ModelConfigIsTheTinySpec) {
  PVM_REQUIRE_PARITY_MODEL(h);
  // If config.json is read wrongly (e.g. rope_theta in a place we do not look), say so here
  // rather than through mysterious logit differences.
  const auto& c = h.lm.config;
  EXPECT_EQ(c.text.vocab_size, 320);
  EXPECT_EQ(c.text.hidden_size, 64);
  EXPECT_EQ(c.text.intermediate_size, 96);
  EXPECT_EQ(c.text.num_hidden_layers, 4);
  EXPECT_EQ(c.text.num_attention_heads, 4);
  EXPECT_EQ(c.text.num_key_value_heads, 2);
  EXPECT_EQ(c.text.head_dim, 16);
  EXPECT_DOUBLE_EQ(c.text.rope_theta, 10000.0);
  EXPECT_EQ(c.text.mrope_section, (std::vector<int64_t>{4, 2, 2}));
  EXPECT_DOUBLE_EQ(c.text.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.vision.depth, 2);
  EXPECT_EQ(c.vision.hidden_size, 32);
  EXPECT_EQ(c.vision.num_heads, 4);
  EXPECT_EQ(c.vision.intermediate_size, 64);
  EXPECT_EQ(c.vision.num_position_embeddings, 64);
  EXPECT_EQ(c.vision.out_hidden_size, 64);
  EXPECT_EQ(c.vision.deepstack_visual_indexes, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(c.image_token_id, 300);
  EXPECT_EQ(c.vision_start_token_id, 302);
  EXPECT_EQ(c.vision_end_token_id, 303);
  if (h.fx.meta.contains("versions"))
    std::cout << "[ parity   ] fixtures from " << h.fx.meta["versions"].dump() << " on "
              << h.fx.meta.value("device", std::string("?")) << "\n";
}

TEST(Parity, Preprocessing) {
  PVM_REQUIRE_PARITY_FIXTURE(h);
  expect_ok(check_preprocessing(h.fx));
}

TEST(Parity, SmartResize) {
  PVM_REQUIRE_PARITY_FIXTURE(h);
  expect_ok(check_smart_resize(h.fx));
}

TEST(Parity, VisionTower) {
  PVM_REQUIRE_PARITY_MODEL(h);
  auto m = h.lm.model;
  expect_ok(check_vision(h.fx, m));
}

TEST(Parity, OneImagePromptLogitsPositionsGreedy) {
  PVM_REQUIRE_PARITY_MODEL(h);
  auto m = h.lm.model;
  expect_ok(check_prompt(h.fx, m, "p1"));
}

TEST(Parity, TwoImagePromptLogitsPositionsGreedy) {
  PVM_REQUIRE_PARITY_MODEL(h);
  auto m = h.lm.model;
  expect_ok(check_prompt(h.fx, m, "p2"));
}

TEST(Parity, TokenizerIds) {
  PVM_REQUIRE_PARITY_FIXTURE(h);
  if (!h.fx.meta.contains("tokenizer") || h.fx.meta["tokenizer"].is_null())
    GTEST_SKIP() << "the parity fixtures have no tokenizer ids (make_parity_fixtures.py ran without --tokenizer)";
  PVM_REQUIRE_QWEN_TOKENIZER(tok);
  expect_ok(check_tokenizer(h.fx, tok));
}

// ---------------------------------------------------------------------------------------------
// The same comparisons on a fixture written by our own engine: proves the format plumbing, and
// that every comparison notices a corrupted reference.
// ---------------------------------------------------------------------------------------------
TEST(Parity, SelfCheckWithOurOwnDump) {
  auto dir = pvm::testing::temp_dir("parity_self");
  const auto& q = pvm_test::qwen_tokenizer();
  write_own_fixture(dir, q.tok.get());
  auto fx = load_fixture(dir);
  auto lm = load_model(fx.path("tiny_model"), LoadOptions{});
  auto& m = lm.model;

  auto pre = check_preprocessing(fx);
  EXPECT_EQ(pre.notes.size(), 3u);
  expect_ok(pre);
  expect_ok(check_smart_resize(fx));
  expect_ok(check_vision(fx, m));
  expect_ok(check_prompt(fx, m, "p1"));
  expect_ok(check_prompt(fx, m, "p2"));
  if (q.tok) expect_ok(check_tokenizer(fx, *q.tok));
  ASSERT_TRUE(::testing::Test::HasFailure() == false) << "the self-check fixture must pass its own comparisons";

  // Each corruption must be reported by the comparison that owns it.
  auto corrupted = [&](const std::string& name, const std::function<void(torch::Tensor&)>& edit) {
    Fixture bad = fx;
    auto t = bad.t.at(name).clone();
    edit(t);
    bad.t[name] = t;
    return bad;
  };
  auto one_level = corrupted("image1.pixel_values", [](torch::Tensor& t) { t[5][7] += 3.0 / 255; });
  EXPECT_FALSE(check_preprocessing(one_level).ok()) << "a pixel off by 1.5 uint8 levels";
  auto shifted = corrupted("image2.pixel_values", [](torch::Tensor& t) { t.slice(0, 0, 4) += 1.0 / 255; });
  EXPECT_FALSE(check_preprocessing(shifted).ok()) << "a systematic half-level shift of many values";
  auto grid = corrupted("image0.grid_thw", [](torch::Tensor& t) { t[0][2] += 2; });
  EXPECT_FALSE(check_preprocessing(grid).ok());
  auto ds = corrupted("vision_all.deepstack.1", [](torch::Tensor& t) { t[3][5] += 2e-4; });
  EXPECT_FALSE(check_vision(ds, m).ok());
  auto merged = corrupted("vision_img0.merged", [](torch::Tensor& t) { t[0][0] -= 2e-4; });
  EXPECT_FALSE(check_vision(merged, m).ok());
  auto logit = corrupted("p2.logits", [](torch::Tensor& t) { t[50][7] += 2e-4; });
  EXPECT_FALSE(check_prompt(logit, m, "p2").ok());
  auto pos = corrupted("p1.position_ids", [](torch::Tensor& t) { t[1][6] += 1; });
  EXPECT_FALSE(check_prompt(pos, m, "p1").ok());
  auto delta = corrupted("p2.rope_deltas", [](torch::Tensor& t) { t[0] += 1; });
  EXPECT_FALSE(check_prompt(delta, m, "p2").ok());
  auto gen = corrupted("p1.generated_ids", [](torch::Tensor& t) { t[31] = (t[31].item<int64_t>() + 1) % 300; });
  auto gen_report = check_prompt(gen, m, "p1");
  EXPECT_FALSE(gen_report.ok());
  bool greedy_noticed = false;
  for (auto& p : gen_report.problems) greedy_noticed |= p.find("greedy ids differ from step 31") != std::string::npos;
  EXPECT_TRUE(greedy_noticed) << "the greedy comparison must name the step";
  Fixture bad_case = fx;
  bad_case.meta["smart_resize_cases"][0]["resized"][0] = 32;
  EXPECT_FALSE(check_smart_resize(bad_case).ok());
  if (q.tok) {
    Fixture bad_tok = fx;
    auto lines = pvm_test::read_lines(fx.path("tokenizer_ids.jsonl"));
    auto j = json::parse(lines[3]);
    j["ids"].push_back(13);
    lines[3] = j.dump();
    std::string text;
    for (auto& l : lines) text += l + "\n";
    write_text(fx.path("tokenizer_ids_bad.jsonl"), text);
    bad_tok.meta["tokenizer"]["file"] = "tokenizer_ids_bad.jsonl";
    EXPECT_FALSE(check_tokenizer(bad_tok, *q.tok).ok());
  }
  // The fixture directory and its model are read back through the same loaders as the HF one.
  EXPECT_THROW(load_fixture(dir + "/nonexistent"), Error);
  fs::remove_all(dir);
}
