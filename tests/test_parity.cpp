// Parity with Hugging Face transformers' Qwen3-VL (issue 20).
//
// tests/make_parity_fixtures.py runs transformers (5.17, CPU, f32) on a tiny random Qwen3-VL and
// writes tests/data/parity/ (committed; format in the script's docstring). These tests load the
// same checkpoint (bf16 on disk, f32 here), images and prompts into our engine and compare on every
// ctest run:
//   pixel values  |ours - HF| <= one uint8 level (2/255 normalized), at most 1% of values differ
//   grids, chat-template ids, tokenizer ids, position ids, rope deltas, greedy ids: equal
//   vision features, hidden states, logits at every position: max |diff| <= 1e-4 (f32)
// A missing fixture (or missing PVM_PYTHON) is a failure; PVM_ALLOW_MISSING_ASSETS=1 turns it into
// a skip for machines without the set-up. The named tests below (issue 20 item 5) each pin one
// mistake other implementations made, and also check that the mistaken variant would NOT match
// the reference, so the fixture really discriminates.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/base/chat_template.h"
#include "engine/base/config.h"
#include "engine/base/error.h"
#include "engine/base/tokenizer.h"
#include "engine/base/version.h"
#include "engine/generate.h"
#include "engine/image.h"
#include "engine/loader.h"
#include "engine/rope.h"
#include "engine/tensor_io.h"
#include "engine/text_model.h"
#include "engine/vision.h"
#include "test_util.h"
#include "tests/tokenizer/qwen_fixture.h"

using namespace pvm;
using json = nlohmann::json;
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

constexpr const char* kFormat = "pvm-parity-v2";
constexpr double kPixelTol = 2.0 / 255.0 + 1e-6;  // one uint8 level in normalized units
constexpr double kPixelSame = 1e-5;
constexpr double kPixelMaxDifferingFraction = 0.01;
constexpr double kTol = 1e-4;         // the f32 tolerance (vision, hidden, logits)
constexpr double kMistake = 2 * kTol;  // a mistaken variant must fail the tolerance by 2x

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

json read_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open");
  return json::parse(f);
}

std::vector<int64_t> to_ids(const torch::Tensor& t) {
  auto c = t.to(torch::kLong).contiguous().view({-1});
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kCPU, torch::kFloat) - b.to(torch::kCPU, torch::kFloat)).abs().max().item<double>();
}

// max |ours - ref| <= tol, with the numbers in the message either way
::testing::AssertionResult close(const std::string& what, const torch::Tensor& ours, const torch::Tensor& ref,
                                 double tol = kTol) {
  if (ours.sizes() != ref.sizes())
    return ::testing::AssertionFailure() << what << ": shape " << ours.sizes() << ", HF " << ref.sizes();
  double d = max_diff(ours, ref);
  std::cout << "[ parity   ] " << what << ": max |diff| " << fmt(d) << " (|HF| max "
            << fmt(ref.abs().max().item<double>()) << ")\n";
  if (d <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": max |diff| " << fmt(d) << " > " << fmt(tol);
}

// The mistaken variant must differ from HF by more than kMistake (else the test proves nothing).
::testing::AssertionResult differs(const std::string& what, const torch::Tensor& wrong, const torch::Tensor& ref) {
  double d = wrong.sizes() == ref.sizes() ? max_diff(wrong, ref) : 1e30;
  std::cout << "[ parity   ] mistaken variant '" << what << "' is " << fmt(d) << " from HF\n";
  if (d > kMistake) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the mistaken variant '" << what << "' matches HF (" << fmt(d)
                                       << "): the fixture cannot tell them apart";
}

// ---------------------------------------------------------------------------------------------
// The fixture, loaded once
// ---------------------------------------------------------------------------------------------
struct Fixture {
  std::string dir, error, model_error;
  bool present = false;
  json meta;
  std::map<std::string, torch::Tensor> t;
  LoadedModel lm;

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
  // HF's float32 pixel values, rebuilt from the stored uint8 levels (the script checks that this
  // is bit-exact)
  torch::Tensor pixels(int64_t k) const {
    return (get("image" + std::to_string(k) + ".pixel_u8").to(torch::kFloat) - 127.5f) / 127.5f;
  }
  torch::Tensor grid(int64_t k) const { return get("image" + std::to_string(k) + ".grid_thw").to(torch::kLong); }
};

struct ImageSet {
  torch::Tensor pixels, grid_thw;
  std::vector<std::array<int64_t, 3>> grids;
};

ImageSet image_set(const Fixture& fx, const json& indices) {
  ImageSet s;
  std::vector<torch::Tensor> px, gr;
  for (auto& k : indices) {
    px.push_back(fx.pixels(k.get<int64_t>()));
    auto g = fx.grid(k.get<int64_t>()).view({-1, 3});
    gr.push_back(g);
    s.grids.push_back({g[0][0].item<int64_t>(), g[0][1].item<int64_t>(), g[0][2].item<int64_t>()});
  }
  s.pixels = torch::cat(px, 0);
  s.grid_thw = torch::cat(gr, 0);
  return s;
}

const Fixture& fixture() {
  static Fixture f = [] {
    Fixture r;
    r.dir = parity_dir();
    if (!fs::exists(fs::path(r.dir) / "meta.json")) {
      r.error = "no parity fixtures at " + r.dir + "/meta.json (regenerate: $PVM_PYTHON tests/make_parity_fixtures.py "
                "--tokenizer-dir DIR)";
      return r;
    }
    r.present = true;
    try {
      r.meta = read_json(r.path("meta.json"));
      if (r.meta.value("format", "") != kFormat) throw Error("meta.json: format is not " + std::string(kFormat));
      r.t = load_tensors(r.path("fixtures.safetensors"));
      for (auto& [name, info] : r.meta.at("tensors").items())
        if (r.get(name).sizes().vec() != info.at("shape").get<std::vector<int64_t>>())
          throw Error("tensor '" + name + "' has another shape than meta.json says");
    } catch (const std::exception& e) {
      r.error = e.what();
      return r;
    }
    try {
      r.lm = load_model(r.path(r.meta.at("model_dir").get<std::string>()), LoadOptions{});
    } catch (const std::exception& e) {
      r.model_error = e.what();
    }
    return r;
  }();
  return f;
}

#define PVM_PARITY_FIXTURE(var)                                                                      \
  const auto& var = fixture();                                                                       \
  if (!var.present && pvm_test::allow_missing_assets()) GTEST_SKIP() << var.error;                   \
  ASSERT_TRUE(var.present) << var.error << " (set PVM_ALLOW_MISSING_ASSETS=1 to skip)";              \
  ASSERT_TRUE(var.error.empty()) << "cannot load the parity fixtures: " << var.error

#define PVM_PARITY_MODEL(var)  \
  PVM_PARITY_FIXTURE(var);     \
  ASSERT_TRUE(var.model_error.empty()) << "cannot load the parity model: " << var.model_error

#define PVM_PARITY_TOKENIZER(tok)                                                                     \
  const auto& tok##_q = pvm_test::qwen_tokenizer();                                                   \
  if (tok##_q.missing && pvm_test::allow_missing_assets()) GTEST_SKIP() << tok##_q.error;             \
  ASSERT_TRUE(tok##_q.tok) << tok##_q.error;                                                          \
  const Tokenizer& tok = *tok##_q.tok

// One run of our engine on a fixture prompt: the full-sequence forward (prompt + HF's greedy
// continuation) with every layer's output, and a KV-cache greedy generation with each decode
// step's logits.
struct PromptRun {
  std::vector<int64_t> prompt, gen_ref, seq;
  ImageSet images;
  torch::Tensor cols;                       // the fixture's logit columns
  torch::Tensor logits;                     // [S+32, V]
  torch::Tensor final_hidden;               // [S+32, H] after the final norm
  std::vector<torch::Tensor> layer_out;     // per layer [S+32, H] (hook: DeepStack added, pre-norm)
  std::vector<int64_t> rope_deltas;
  std::vector<int64_t> gen;                 // our greedy ids
  std::vector<torch::Tensor> decode_logits; // per decode step [V] (step 0 = prefill's last row)
};

PromptRun run_prompt(const Fixture& fx, const std::string& name) {
  auto m = fx.lm.model;
  torch::NoGradGuard ng;
  PromptRun r;
  const auto& meta = fx.prompt(name);
  r.prompt = to_ids(fx.get(name + ".prompt_ids"));
  r.gen_ref = to_ids(fx.get(name + ".generated_ids"));
  r.images = image_set(fx, meta.at("images"));
  r.cols = fx.get(name + ".logit_cols").to(torch::kLong);
  r.seq = r.prompt;
  r.seq.insert(r.seq.end(), r.gen_ref.begin(), r.gen_ref.end());
  ForwardInput in;
  in.input_ids = torch::tensor(r.seq, torch::kLong).view({1, -1});
  in.pixel_values = r.images.pixels;
  in.grids = r.images.grids;
  in.all_logits = true;
  ForwardHooks hooks;
  const int64_t L = m->config().text.num_hidden_layers;
  r.layer_out.resize(L);
  hooks.layer_output = [&r](int64_t layer, const torch::Tensor& h) { r.layer_out[layer] = h[0].clone(); };
  auto out = m->forward(in, nullptr, hooks);
  r.logits = out.logits[0].to(torch::kFloat);
  r.final_hidden = out.hidden[0].to(torch::kFloat);
  r.rope_deltas = out.rope_deltas;

  GenerationRequest req;
  req.prompt_ids = r.prompt;
  req.pixel_values = r.images.pixels;
  req.grids = r.images.grids;
  req.max_new_tokens = (int64_t)r.gen_ref.size();
  req.stop_ids = {m->config().text.vocab_size};  // an id the model cannot produce: never stops early
  req.after_forward = [&r](const ForwardOutput& o, bool) { r.decode_logits.push_back(o.logits[0][-1].to(torch::kFloat)); };
  r.gen = generate(m, req).tokens.at(0);
  return r;
}

const PromptRun& prompt_run(const std::string& name) {
  static std::map<std::string, PromptRun> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, run_prompt(fixture(), name)).first;
  return it->second;
}

void check_prompt(const Fixture& fx, const std::string& name) {
  const auto& r = prompt_run(name);
  const int64_t S = r.prompt.size();
  // logits at every position, on the fixture's columns (top-8 of every position, the special ids,
  // 256 random ids); the greedy argmax over the whole vocabulary is checked through the ids
  EXPECT_TRUE(close(name + " logits [" + std::to_string(r.seq.size()) + " positions]", r.logits.index_select(1, r.cols),
                    fx.get(name + ".logits")));
  for (int64_t l = 0; l < (int64_t)r.layer_out.size(); ++l)
    EXPECT_TRUE(close(name + " hidden after layer " + std::to_string(l), r.layer_out[l],
                      fx.get(name + ".hidden." + std::to_string(l))));
  EXPECT_EQ(r.gen, r.gen_ref) << name << ": our KV-cache greedy ids " << vec_str(r.gen) << ", HF "
                              << vec_str(r.gen_ref);
  ASSERT_EQ(r.decode_logits.size(), r.gen_ref.size());
  auto dec = torch::stack(r.decode_logits).index_select(1, r.cols);
  EXPECT_TRUE(close(name + " logits of each decode step (KV cache)", dec, fx.get(name + ".decode_logits")));
  // the continuation is decided by the whole vocabulary: our full-forward argmax equals HF's ids
  auto am = to_ids(r.logits.slice(0, S - 1, S - 1 + (int64_t)r.gen_ref.size()).argmax(-1));
  EXPECT_EQ(am, r.gen_ref) << name << ": argmax over the full vocabulary";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The fixture itself
// ---------------------------------------------------------------------------------------------
TEST(Parity, FixturesPresentAndSmall) {
  PVM_PARITY_FIXTURE(fx);
  int64_t total = 0;
  for (auto& e : fs::recursive_directory_iterator(fx.dir))
    if (e.is_regular_file()) total += (int64_t)e.file_size();
  EXPECT_LE(total, 5 * 1000 * 1000) << "committed fixtures must stay under 5 MB";
  EXPECT_GE(fx.meta.at("images").size(), 8u);
  EXPECT_EQ(fx.meta.at("versions").value("transformers", std::string()).substr(0, 2), "5.")
      << "regenerate with the set-up's transformers";
  std::cout << "[ parity   ] fixtures from " << fx.meta["versions"].dump() << ", " << total << " bytes\n";
}

TEST(Parity, PythonOfTheSetUpIsConfigured) {
  // the fixtures are regenerated with it, and the live check below runs transformers with it
  const char* py = std::getenv("PVM_PYTHON");
  if ((!py || !*py) && pvm_test::allow_missing_assets()) GTEST_SKIP() << "PVM_PYTHON is not set";
  ASSERT_TRUE(py && *py) << "PVM_PYTHON is not set (CMake cache variable PVM_PYTHON; set-up's venv)";
  EXPECT_TRUE(fs::exists(py)) << py;
}

TEST(Parity, LiveTransformersSmartResize) {
  // 200 random sizes through HF's own smart_resize, now, with the set-up's transformers
  const char* py = std::getenv("PVM_PYTHON");
  if ((!py || !*py) && pvm_test::allow_missing_assets()) GTEST_SKIP() << "PVM_PYTHON is not set";
  ASSERT_TRUE(py && *py) << "PVM_PYTHON is not set";
  auto dir = pvm::testing::temp_dir("parity_live");
  std::string out = dir + "/sizes.json";
  std::string cmd = std::string("\"") + py +
                    "\" -c \"import json,random,sys\n"
                    "from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize\n"
                    "rng=random.Random(5); r=[]\n"
                    "for i in range(200):\n"
                    "  h=rng.randint(8,5000); w=rng.randint(8,5000); lo,hi=rng.choice([(65536,16777216),(4096,49152),(3136,12845056)])\n"
                    "  try: r.append([h,w,lo,hi]+list(map(int,smart_resize(h,w,factor=32,min_pixels=lo,max_pixels=hi))))\n"
                    "  except ValueError: r.append([h,w,lo,hi,-1,-1])\n"
                    "json.dump(r,open(sys.argv[1],'w'))\" \"" + out + "\" 2>&1";
  int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << "running transformers with " << py << " failed";
  int n = 0;
  for (auto& c : read_json(out)) {
    int64_t h = c[0], w = c[1], lo = c[2], hi = c[3], rh = c[4], rw = c[5];
    std::pair<int64_t, int64_t> ours{-1, -1};
    try {
      ours = smart_resize(h, w, 32, lo, hi);
    } catch (const Error&) {
    }
    EXPECT_EQ(ours, std::make_pair(rh, rw)) << "smart_resize(" << h << ", " << w << ", 32, " << lo << ", " << hi << ")";
    ++n;
  }
  EXPECT_EQ(n, 200);
  std::remove(out.c_str());  // (not fs::remove_all: it binds to a broken copy inside the torch wheel's libtorch.so)
}

TEST(Parity, ModelConfigIsTheTinySpec) {
  PVM_PARITY_MODEL(fx);
  const auto& c = fx.lm.config;
  const auto& t = fx.meta.at("text");
  const auto& v = fx.meta.at("vision");
  EXPECT_EQ(c.text.vocab_size, 151936);
  EXPECT_EQ(c.text.vocab_size, t.at("vocab_size").get<int64_t>());
  EXPECT_EQ(c.text.hidden_size, t.at("hidden_size").get<int64_t>());
  EXPECT_EQ(c.text.num_hidden_layers, 4);
  EXPECT_EQ(c.text.num_attention_heads, 4);
  EXPECT_EQ(c.text.num_key_value_heads, 2);  // GQA ratio 2
  EXPECT_EQ(c.text.head_dim, 128);
  EXPECT_DOUBLE_EQ(c.text.rope_theta, 5000000.0);
  EXPECT_EQ(c.text.mrope_section, (std::vector<int64_t>{24, 20, 20}));
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.vision.depth, 5);
  EXPECT_EQ(c.vision.deepstack_visual_indexes, (std::vector<int64_t>{1, 3, 4}));
  EXPECT_EQ(c.vision.deepstack_visual_indexes, v.at("deepstack_visual_indexes").get<std::vector<int64_t>>());
  EXPECT_EQ(c.vision.num_position_embeddings, 144);
  EXPECT_EQ(c.vision.hidden_act, "gelu_pytorch_tanh");
  EXPECT_EQ(c.image_token_id, 151655);
  EXPECT_EQ(c.video_token_id, 151656);
  EXPECT_EQ(c.vision_start_token_id, 151652);
  EXPECT_EQ(c.vision_end_token_id, 151653);
}

// ---------------------------------------------------------------------------------------------
// Preprocessing, chat template, tokenizer
// ---------------------------------------------------------------------------------------------
TEST(Parity, Preprocessing) {
  PVM_PARITY_FIXTURE(fx);
  auto pc = PreprocessorConfig::load(fx.path(fx.meta.at("preprocessor_config").get<std::string>()));
  const auto& images = fx.meta.at("images");
  ASSERT_GE(images.size(), 8u);
  for (size_t k = 0; k < images.size(); ++k) {
    const auto& im = images[k];
    std::string file = im.at("file");
    SCOPED_TRACE(file);
    auto img = load_image(fx.path(file));
    ASSERT_EQ(img.height, im.at("height").get<int>());
    ASSERT_EQ(img.width, im.at("width").get<int>());
    auto p = preprocess(img, pc);
    std::vector<int64_t> grid{p.grid_t, p.grid_h, p.grid_w};
    EXPECT_EQ(grid, to_ids(fx.grid(k))) << "grid_thw";
    auto ref = fx.pixels(k);
    ASSERT_EQ(p.pixel_values.sizes(), ref.sizes());
    auto d = (p.pixel_values - ref).abs();
    double mx = d.max().item<double>();
    int64_t off = (d > kPixelSame).sum().item<int64_t>();
    std::cout << "[ parity   ] " << file << " (" << im.at("checks").get<std::string>() << ") -> grid " << vec_str(grid)
              << ": max |diff| " << fmt(mx) << ", " << off << " of " << d.numel() << " values differ\n";
    EXPECT_LE(mx, kPixelTol) << "more than one uint8 level";
    EXPECT_LE(double(off) / double(d.numel()), kPixelMaxDifferingFraction) << "more than 1% of the values differ";
  }
}

TEST(Parity, SmartResizeCases) {
  PVM_PARITY_FIXTURE(fx);
  int n = 0;
  for (auto& c : fx.meta.at("smart_resize_cases")) {
    int64_t h = c.at("height"), w = c.at("width"), f = c.at("factor"), lo = c.at("min_pixels"), hi = c.at("max_pixels");
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w) + " min " + std::to_string(lo) + " max " + std::to_string(hi));
    if (c.value("error", false)) {
      EXPECT_THROW(smart_resize(h, w, f, lo, hi), Error);
    } else {
      auto [rh, rw] = smart_resize(h, w, f, lo, hi);
      EXPECT_EQ((std::vector<int64_t>{rh, rw}), c.at("resized").get<std::vector<int64_t>>());
    }
    ++n;
  }
  EXPECT_GE(n, 40);
}

TEST(Parity, ChatTemplateIds) {
  PVM_PARITY_FIXTURE(fx);
  PVM_PARITY_TOKENIZER(tok);
  const auto& images = fx.meta.at("images");
  int n = 0;
  for (auto& conv : fx.meta.at("conversations")) {
    std::string name = conv.at("name");
    SCOPED_TRACE(name);
    std::vector<ChatMessage> msgs;
    for (auto& m : conv.at("messages")) {
      ChatMessage cm;
      cm.role = m.at("role");
      for (auto& part : m.at("content")) {
        if (part.contains("image"))
          cm.content.push_back(ChatPart::make_image(images.at(part.at("image").get<size_t>()).at("num_tokens").get<int64_t>()));
        else
          cm.content.push_back(ChatPart::make_text(part.at("text")));
      }
      msgs.push_back(cm);
    }
    auto enc = encode_chat(tok, msgs);
    std::vector<int64_t> ours(enc.ids.begin(), enc.ids.end());
    EXPECT_EQ(ours, to_ids(fx.get("chat." + name + ".ids")));
    ++n;
  }
  EXPECT_EQ(n, 5);
}

TEST(Parity, TokenizerIds) {
  PVM_PARITY_FIXTURE(fx);
  PVM_PARITY_TOKENIZER(tok);
  const auto& tm = fx.meta.at("tokenizer");
  ASSERT_EQ((int64_t)fs::file_size(tok.source()), tm.at("tokenizer_json_bytes").get<int64_t>())
      << tok.source() << " is not the tokenizer.json the fixture was made with";
  std::string corpus = (fs::path(pvm::source_dir()) / tm.at("corpus").get<std::string>()).string();
  std::map<int64_t, std::string> text;
  for (auto& line : pvm_test::read_lines(corpus)) {
    auto j = json::parse(line);
    text[j.at("i").get<int64_t>()] = pvm_test::b64decode(j.at("b64").get<std::string>());
  }
  int64_t n = 0, bad = 0;
  for (auto& line : pvm_test::read_lines(fx.path(tm.at("file").get<std::string>()))) {
    auto j = json::parse(line);
    auto ref = j.at("ids").get<std::vector<int32_t>>();
    auto ours = tok.encode(text.at(j.at("i").get<int64_t>()));
    ++n;
    if (ours != ref && ++bad <= 5) ADD_FAILURE() << "string " << j.at("i") << ": ours " << vec_str(ours) << ", HF " << vec_str(ref);
  }
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(n, tm.at("count").get<int64_t>());
}

// ---------------------------------------------------------------------------------------------
// Vision tower and decoder
// ---------------------------------------------------------------------------------------------
TEST(Parity, VisionTowerAndDeepStackFeatures) {
  PVM_PARITY_MODEL(fx);
  torch::NoGradGuard ng;
  auto m = fx.lm.model;
  for (std::string p : {"p1", "p2"}) {
    auto s = image_set(fx, fx.prompt(p).at("images"));
    auto out = m->model->visual->forward(s.pixels, s.grid_thw);
    EXPECT_TRUE(close(p + " vision merged", out.merged, fx.get(p + ".vision_merged")));
    ASSERT_EQ(out.deepstack.size(), 3u);
    for (size_t j = 0; j < 3; ++j)
      EXPECT_TRUE(close(p + " deepstack " + std::to_string(j), out.deepstack[j], fx.get(p + ".deepstack." + std::to_string(j))));
  }
}

TEST(Parity, OneImagePromptLogitsHiddenGreedy) {
  PVM_PARITY_MODEL(fx);
  check_prompt(fx, "p1");
}

TEST(Parity, TwoImagePromptLogitsHiddenGreedy) {
  PVM_PARITY_MODEL(fx);
  check_prompt(fx, "p2");
}

TEST(Parity, PositionIdsAndRopeDeltas) {
  PVM_PARITY_MODEL(fx);
  for (std::string p : {"p1", "p2"}) {
    auto ids = to_ids(fx.get(p + ".prompt_ids"));
    auto s = image_set(fx, fx.prompt(p).at("images"));
    auto ri = rope_index({ids}, s.grids, fx.lm.config);
    EXPECT_TRUE(torch::equal(ri.position_ids.select(1, 0), fx.get(p + ".position_ids").to(torch::kLong))) << p;
    EXPECT_EQ(ri.rope_deltas, to_ids(fx.get(p + ".rope_deltas"))) << p;
  }
}

// ---------------------------------------------------------------------------------------------
// Issue 20 item 5: the mistakes other implementations made, one named test each
// ---------------------------------------------------------------------------------------------
TEST(Parity, MropeSectionsInterleavedNotBlocked) {
  PVM_PARITY_MODEL(fx);
  const auto& t = fx.lm.config.text;
  for (std::string p : {"p1", "p2"}) {
    auto pos = fx.get(p + ".position_ids").to(torch::kLong).unsqueeze(1);  // [3, 1, S]
    auto ours = mrope_cos_sin(pos, t, torch::kFloat, torch::kCPU);
    EXPECT_TRUE(close(p + " text rotary cos", ours.cos[0], fx.get(p + ".rope_cos"), 1e-6));
    EXPECT_TRUE(close(p + " text rotary sin", ours.sin[0], fx.get(p + ".rope_sin"), 1e-6));
    // Qwen2.5-VL's blocked layout: frequencies [0,24) from T, [24,44) from H, [44,64) from W
    auto inv = 1.0 / torch::pow(t.rope_theta, torch::arange(0, t.head_dim, 2, torch::kLong).to(torch::kFloat) / t.head_dim);
    auto f = pos.select(1, 0).to(torch::kFloat).unsqueeze(-1) * inv;  // [3, S, 64]
    auto blocked = torch::cat({f[0].slice(-1, 0, 24), f[1].slice(-1, 24, 44), f[2].slice(-1, 44, 64)}, -1);
    EXPECT_TRUE(differs("blocked MRoPE sections", torch::cat({blocked, blocked}, -1).cos(), fx.get(p + ".rope_cos")));
  }
}

TEST(Parity, RopeDeltasCarriedIntoDecode) {
  PVM_PARITY_MODEL(fx);
  torch::NoGradGuard ng;
  auto m = fx.lm.model;
  for (std::string p : {"p1", "p2"}) {
    const auto& r = prompt_run(p);
    ASSERT_EQ(r.rope_deltas, to_ids(fx.get(p + ".rope_deltas")));
    EXPECT_LT(r.rope_deltas[0], 0) << "an image prompt has a negative delta";
    // our KV-cache decode (positions cache_len + delta) gives HF's per-step logits and ids
    auto dec = torch::stack(r.decode_logits).index_select(1, r.cols);
    EXPECT_TRUE(close(p + " decode-step logits", dec, fx.get(p + ".decode_logits")));
    EXPECT_EQ(r.gen, r.gen_ref);
    // the mistake: decode positions continue at the sequence length, without the delta
    const int64_t S = r.prompt.size(), N = r.gen_ref.size();
    auto ri = rope_index({r.prompt}, r.images.grids, fx.lm.config);
    auto cont = torch::arange(S, S + N, torch::kLong).view({1, 1, N}).expand({3, 1, N});
    ForwardInput in;
    in.input_ids = torch::tensor(r.seq, torch::kLong).view({1, -1});
    in.pixel_values = r.images.pixels;
    in.grids = r.images.grids;
    in.position_ids = torch::cat({ri.position_ids, cont}, 2);
    in.all_logits = true;
    auto wrong = m->forward(in).logits[0].slice(0, S - 1, S - 1 + N).index_select(1, r.cols);
    EXPECT_TRUE(differs("decode without rope delta", wrong, fx.get(p + ".decode_logits")));
  }
}

TEST(Parity, DeepStackTapsAreVisionBlockIndexesInjectedIntoFirstLayers) {
  PVM_PARITY_MODEL(fx);
  torch::NoGradGuard ng;
  auto m = fx.lm.model;
  auto vis = m->model->visual;
  const auto& taps = fx.lm.config.vision.deepstack_visual_indexes;  // [1, 3, 4]
  // the tapped features are the mergers applied to the outputs of vision blocks 1, 3, 4 (HF's
  // block outputs as input), not to blocks 0, 1, 2
  for (size_t j = 0; j < taps.size(); ++j) {
    auto merger = vis->deepstack_merger_list[j]->as<Qwen3VLVisionPatchMergerImpl>();
    auto ref = fx.get("p1.deepstack." + std::to_string(j));
    EXPECT_TRUE(close("deepstack " + std::to_string(j) + " from vision block " + std::to_string(taps[j]),
                      merger->forward(fx.get("p1.vision_block." + std::to_string(taps[j]))), ref));
    EXPECT_TRUE(differs("deepstack " + std::to_string(j) + " from block " + std::to_string(j),
                        merger->forward(fx.get("p1.vision_block." + std::to_string(j))), ref));
  }
  // injected after text layers 0, 1, 2: the hidden states after those layers match HF's, and
  // would not without the injection (or with it one layer late)
  const auto& r = prompt_run("p1");
  auto mask = (torch::tensor(r.seq, torch::kLong) == fx.lm.config.image_token_id);
  for (int64_t l = 0; l < 3; ++l) {
    auto ref = fx.get("p1.hidden." + std::to_string(l));
    EXPECT_TRUE(close("p1 hidden after layer " + std::to_string(l), r.layer_out[l], ref));
    auto without = r.layer_out[l].clone();
    without.index_put_({mask}, without.index({mask}) - fx.get("p1.deepstack." + std::to_string(l)));
    EXPECT_TRUE(differs("no DeepStack after layer " + std::to_string(l), without, ref));
  }
  EXPECT_TRUE(close("p1 hidden after layer 3 (no injection)", r.layer_out[3], fx.get("p1.hidden.3")));
}

TEST(Parity, MergerNormBeforeConcatDeepStackNormAfter) {
  PVM_PARITY_MODEL(fx);
  torch::NoGradGuard ng;
  auto holder = fx.lm.model;
  auto vis = holder->model->visual;
  auto last = fx.get("p1.vision_block.4");  // HF's last block output [L, Dv]
  const int64_t L = last.size(0), Dv = last.size(1);
  auto& mg = vis->merger;
  EXPECT_TRUE(close("main merger (norm per patch, then 2x2 concat)", mg->forward(last), fx.get("p1.vision_merged")));
  // the mistake: concat first, then normalise over 4*Dv (weights tiled)
  auto w4 = mg->norm->weight.repeat({4}), b4 = mg->norm->bias.repeat({4});
  auto x = F::layer_norm(last.view({L / 4, 4 * Dv}), F::LayerNormFuncOptions({4 * Dv}).weight(w4).bias(b4).eps(1e-6));
  auto wrong = mg->linear_fc2->forward(F::gelu(mg->linear_fc1->forward(x)));
  EXPECT_TRUE(differs("main merger normalised after the concat", wrong, fx.get("p1.vision_merged")));
  // DeepStack merger: concat, then LayerNorm(4*Dv); the mistake normalises each patch first
  auto ds = vis->deepstack_merger_list[2]->as<Qwen3VLVisionPatchMergerImpl>();
  auto ref = fx.get("p1.deepstack.2");
  EXPECT_TRUE(close("DeepStack merger (concat, then norm)", ds->forward(last), ref));
  auto wd = ds->norm->weight.view({4, Dv}), bd = ds->norm->bias.view({4, Dv});
  auto per = F::layer_norm(last.view({L / 4, 4, Dv}), F::LayerNormFuncOptions({Dv}).eps(1e-6)) * wd + bd;
  auto wrong2 = ds->linear_fc2->forward(F::gelu(ds->linear_fc1->forward(per.view({L / 4, 4 * Dv}))));
  EXPECT_TRUE(differs("DeepStack merger normalised per patch", wrong2, ref));
}

TEST(Parity, PosEmbedInterpolationLinspaceOnNonSquareGrids) {
  PVM_PARITY_MODEL(fx);
  torch::NoGradGuard ng;
  auto holder = fx.lm.model;
  auto vis = holder->model->visual;
  for (std::string p : {"p1", "p2"}) {  // grids 4x6; 2x20 and 4x6 on a 12x12 table
    auto s = image_set(fx, fx.prompt(p).at("images"));
    auto ref = fx.get(p + ".pos_embed");
    EXPECT_TRUE(close(p + " pos-embed resample", vis->fast_pos_embed_interpolate(s.grid_thw), ref, 1e-5));
    // the mistake: align_corners=False (half-pixel centres) instead of linspace(0, G-1, n)
    const int64_t G = 12, Dv = ref.size(1);
    auto table = vis->pos_embed->weight.view({1, G, G, Dv}).permute({0, 3, 1, 2});
    std::vector<torch::Tensor> parts;
    for (auto& g : s.grids) {
      auto r = F::interpolate(table, F::InterpolateFuncOptions()
                                         .size(std::vector<int64_t>{g[1], g[2]})
                                         .mode(torch::kBilinear)
                                         .align_corners(false));
      auto rows = r[0].permute({1, 2, 0});  // [h, w, Dv]
      parts.push_back(rows.view({g[1] / 2, 2, g[2] / 2, 2, Dv}).permute({0, 2, 1, 3, 4}).reshape({-1, Dv}));
    }
    EXPECT_TRUE(differs(p + " pos-embed with align_corners=False", torch::cat(parts), ref));
  }
}

TEST(Parity, GeluTanhInVisionBlocksExactInMergers) {
  PVM_PARITY_MODEL(fx);
  torch::NoGradGuard ng;
  auto holder = fx.lm.model;
  auto vis = holder->model->visual;
  auto s = image_set(fx, fx.prompt("p1").at("images"));
  auto rot = vis->rot_pos_emb(s.grid_thw);
  auto emb = torch::cat({rot, rot}, -1);
  auto cos = emb.cos(), sin = emb.sin();
  auto seg = Qwen3VLVisionModelImpl::segment_lengths(s.grid_thw);
  for (int64_t i = 1; i < 5; ++i) {  // our block i on HF's block i-1 output
    auto blk = vis->blocks[i]->as<Qwen3VLVisionBlockImpl>();
    auto in = fx.get("p1.vision_block." + std::to_string(i - 1));
    auto ref = fx.get("p1.vision_block." + std::to_string(i));
    EXPECT_TRUE(close("vision block " + std::to_string(i), blk->forward(in, seg, cos, sin), ref));
    auto h = in + blk->attn->forward(blk->norm1->forward(in), seg, cos, sin);
    auto wrong = h + blk->mlp->linear_fc2->forward(F::gelu(blk->mlp->linear_fc1->forward(blk->norm2->forward(h))));
    EXPECT_TRUE(differs("exact GELU in vision block " + std::to_string(i), wrong, ref));
  }
  auto last = fx.get("p1.vision_block.4");
  auto& mg = vis->merger;
  auto x = mg->norm->forward(last).view({-1, 4 * last.size(1)});
  auto wrong = mg->linear_fc2->forward(F::gelu(mg->linear_fc1->forward(x), F::GELUFuncOptions().approximate("tanh")));
  EXPECT_TRUE(close("merger (exact GELU)", mg->forward(last), fx.get("p1.vision_merged")));
  EXPECT_TRUE(differs("tanh GELU in the merger", wrong, fx.get("p1.vision_merged")));
}

TEST(Parity, ResizeFactor32) {
  PVM_PARITY_FIXTURE(fx);
  auto pc = PreprocessorConfig::load(fx.path(fx.meta.at("preprocessor_config").get<std::string>()));
  EXPECT_EQ(pc.patch_size * pc.merge_size, 32);
  int differs28 = 0;
  for (size_t k = 0; k < fx.meta.at("images").size(); ++k) {
    const auto& im = fx.meta["images"][k];
    int64_t h = im.at("height"), w = im.at("width");
    auto [rh, rw] = smart_resize(h, w, 32, pc.min_pixels, pc.max_pixels);
    auto g = to_ids(fx.grid(k));
    EXPECT_EQ((std::vector<int64_t>{1, rh / 16, rw / 16}), g) << im.at("file");
    // Qwen2.5-VL's factor 28 (patch 14) would give other sizes
    auto [h28, w28] = smart_resize(h, w, 28, pc.min_pixels, pc.max_pixels);
    differs28 += (h28 != rh || w28 != rw);
  }
  EXPECT_GE(differs28, 6) << "factor 28 must give other sizes on most test images";
}

TEST(Parity, LastHiddenStateIsTakenBeforeTheFinalNorm) {
  PVM_PARITY_MODEL(fx);
  torch::NoGradGuard ng;
  const auto& r = prompt_run("p1");
  auto m = fx.lm.model;
  // what the logit lens reads for the last layer = the residual stream before the final norm
  EXPECT_TRUE(close("p1 last layer output (pre-norm)", r.layer_out.back(), fx.get("p1.hidden.3")));
  // HF's output_hidden_states[-1] is after the norm: equal to our final hidden, not to the lens input
  EXPECT_TRUE(close("p1 final-normed hidden", r.final_hidden, fx.get("p1.hf_hidden_last")));
  EXPECT_TRUE(differs("logit lens on HF's hidden_states[-1]", r.layer_out.back(), fx.get("p1.hf_hidden_last")));
  // the lens applied to the last layer reproduces the logits
  auto lens = torch::matmul(m->model->language_model->norm->forward(r.layer_out.back()), m->lm_head_weight().t());
  EXPECT_TRUE(close("logit lens at the last layer = logits", lens.index_select(1, r.cols), fx.get("p1.logits")));
}

TEST(Parity, VideoPadIsNeverTakenForImagePad) {
  PVM_PARITY_MODEL(fx);
  torch::NoGradGuard ng;
  auto m = fx.lm.model;
  auto ids = to_ids(fx.get("stray_video.prompt_ids"));
  const auto& c = fx.lm.config;
  ASSERT_EQ(std::count(ids.begin(), ids.end(), c.video_token_id), 1) << "the tokenizer gave no <|video_pad|>";
  ASSERT_NE(c.video_token_id, c.image_token_id);
  auto s = image_set(fx, fx.meta.at("stray_video").at("images"));
  // HF refuses a video token without a video (meta: hf_error); so do we, rather than splice image
  // rows into it or give it image positions
  std::cout << "[ parity   ] HF: " << fx.meta["stray_video"].at("hf_error").get<std::string>() << "\n";
  ForwardInput in;
  in.input_ids = torch::tensor(ids, torch::kLong).view({1, -1});
  in.pixel_values = s.pixels;
  in.grids = s.grids;
  EXPECT_THROW(m->forward(in), Error);
  EXPECT_THROW(rope_index({ids}, s.grids, c), Error);
  // and in a correct prompt, only <|image_pad|> (151655) positions receive image features
  auto p1 = to_ids(fx.get("p1.prompt_ids"));
  EXPECT_EQ(std::count(p1.begin(), p1.end(), c.video_token_id), 0);
  EXPECT_EQ(std::count(p1.begin(), p1.end(), c.image_token_id), fx.get("p1.vision_merged").size(0));
}

// ---------------------------------------------------------------------------------------------
// The official PVM code's checkpoint layout (issue 20 item 4, on every run)
// ---------------------------------------------------------------------------------------------
TEST(Parity, OfficialPvmCheckpointLayoutLoadsByName) {
  // tests/data/official_pvm_layout: config.json and the tensor names/shapes of the checkpoint that
  // the official PVM modeling file's save_pretrained wrote (experiments/parity/official_pvm.py
  // --layout-out). A checkpoint with exactly those tensors must load strictly, PVM blocks included.
  const char* env = std::getenv("PVM_TEST_DATA");
  std::string dir = ((env && *env) ? std::string(env) : pvm::source_dir() + "/tests/data") + "/official_pvm_layout";
  if (!fs::exists(fs::path(dir) / "tensors.json") && pvm_test::allow_missing_assets()) GTEST_SKIP() << dir;
  ASSERT_TRUE(fs::exists(fs::path(dir) / "tensors.json")) << dir << "/tensors.json is missing";
  auto layout = read_json(dir + "/tensors.json").at("tensors");
  auto tmp = pvm::testing::temp_dir("official_pvm_layout");
  fs::copy_file(fs::path(dir) / "config.json", fs::path(tmp) / "config.json", fs::copy_options::overwrite_existing);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  int n_pvm = 0;
  for (auto& [name, info] : layout.items()) {
    ASSERT_EQ(info.at("dtype").get<std::string>(), "F32") << name;
    // distinct values, so that a tensor loaded into the wrong parameter would show
    auto shape = info.at("shape").get<std::vector<int64_t>>();
    tensors.push_back({name, torch::full(shape, float(tensors.size() % 97) / 97.0f)});
    n_pvm += name.find(".pvm_block.") != std::string::npos;
  }
  save_tensors(tmp + "/model.safetensors", tensors);
  LoadedModel lm;
  ASSERT_NO_THROW(lm = load_model(tmp, LoadOptions{})) << "the official checkpoint layout does not load strictly";
  EXPECT_EQ(lm.config.text.pvm_layers, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(lm.config.text.pvm_hidden_size, 256);
  EXPECT_EQ(n_pvm, 30);
  auto params = lm.model->named_parameters();
  for (auto& [name, t] : tensors) {
    auto* p = params.find(name);
    ASSERT_NE(p, nullptr) << name << " has no parameter of that name";
    EXPECT_TRUE(torch::equal(*p, t)) << name << " did not land in its parameter";
  }
  std::remove((tmp + "/model.safetensors").c_str());
  std::remove((tmp + "/config.json").c_str());
}

// ---------------------------------------------------------------------------------------------
// The comparisons notice a corrupted reference (so a passing run means something)
// ---------------------------------------------------------------------------------------------
TEST(Parity, ToleranceIsTightEnoughToNoticeSmallErrors) {
  PVM_PARITY_MODEL(fx);
  const auto& r = prompt_run("p1");
  auto ref = fx.get("p1.logits").clone();
  ref[10][3] += 2e-4;
  EXPECT_FALSE(close("corrupted logits", r.logits.index_select(1, r.cols), ref));
  auto px = fx.pixels(0).clone();
  px[3][5] += 3.0 / 255;
  auto pc = PreprocessorConfig::load(fx.path(fx.meta.at("preprocessor_config").get<std::string>()));
  auto p = preprocess(load_image(fx.path(fx.meta["images"][0].at("file").get<std::string>())), pc);
  EXPECT_GT((p.pixel_values - px).abs().max().item<double>(), kPixelTol);
}
