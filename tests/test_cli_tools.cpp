// pvm convert (dtype change, adapter merge) and pvm plot (CSV -> PNG), run as the CLI.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "engine/base/error.h"
#include "engine/image.h"
#include "engine/loader.h"
#include "engine/pvm.h"
#include "test_util.h"

using namespace pvm;
namespace fs = std::filesystem;
using pvm::testing::pvm_bin;
using pvm::testing::run_pvm;

namespace {

torch::Tensor logits_of(Qwen3VLForConditionalGeneration& m, const ModelConfig& cfg) {
  torch::NoGradGuard ng;
  ForwardInput in;
  in.input_ids = torch::tensor(pvm::testing::one_image_prompt(cfg), torch::kLong).view({1, -1});
  in.pixel_values = pvm::testing::random_pixel_rows(24, 3);
  in.grids = {{1, 4, 6}};
  in.all_logits = true;
  return m->forward(in).logits[0];
}

}  // namespace

TEST(CliConvert, MergesAnAdapterAndChangesDtype) {
  if (pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  auto dir = pvm::testing::temp_dir("convert");
  auto cfg = pvm::testing::tiny_config();
  auto m = make_random_model(cfg, 11, torch::kFloat, torch::kCPU);
  save_model(m, dir + "/base", torch::kFloat);
  std::ofstream(dir + "/base/tokenizer.json") << "{}";  // travels with the weights
  TextConfig f = cfg.text;
  f.pvm_hidden_size = 32, f.pvm_layers = {1, 2};
  attach_pvm(*m, f, 3);
  {
    torch::NoGradGuard ng;
    for (auto& p : m->named_parameters())
      if (p.key().find("gate_alpha") != std::string::npos) p.value().fill_(0.7);
  }
  save_pvm_adapter(*m, dir + "/adapter");
  auto want = logits_of(m, m->config());

  auto r = run_pvm("convert --model " + dir + "/base --pvm " + dir + "/adapter --out " + dir + "/merged --dtype f32", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto merged = load_model(dir + "/merged", LoadOptions{});
  EXPECT_EQ(merged.config.text.pvm_layers, (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(torch::equal(want, logits_of(merged.model, merged.config)));  // f32: bit-exact
  EXPECT_TRUE(fs::exists(dir + "/merged/tokenizer.json"));

  // bf16 on disk: every weight is the bf16 rounding of the source.
  r = run_pvm("convert --model " + dir + "/merged --out " + dir + "/half --dtype bf16", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  LoadOptions keep;
  keep.dtype = torch::kBFloat16;
  auto half = load_model(dir + "/half", keep);
  auto src = merged.model->named_parameters();
  int64_t n = 0;
  for (auto& p : half.model->named_parameters()) {
    ASSERT_TRUE(src.contains(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(p.value(), src[p.key()].to(torch::kBFloat16))) << p.key();
    ++n;
  }
  EXPECT_EQ(n, (int64_t)src.size());

  // Bad input: one line naming the problem, no output written.
  r = run_pvm("convert --model " + dir + "/nope --out " + dir + "/x", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find(dir + "/nope"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/x/model.safetensors"));
  r = run_pvm("convert --model " + dir + "/base --out " + dir + "/base", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("source checkpoint"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

TEST(CliPlot, DrawsCsvColumnsAndRejectsBadFiles) {
  if (pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  auto dir = pvm::testing::temp_dir("plot");
  {
    std::ofstream csv(dir + "/a.csv");
    csv << "position,accuracy,other\n";
    for (int i = 1; i <= 16; ++i) csv << i << "," << 1.0 / i << ",x\n";
  }
  auto r = run_pvm("plot --series " + dir + "/a.csv:position:accuracy:baseline --out " + dir +
                       "/p.png --title acc --xlabel position --ylabel accuracy --ymin 0 --ymax 1",
                   dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto img = load_image(dir + "/p.png");
  EXPECT_EQ(img.width, 800);
  EXPECT_EQ(img.height, 500);
  // The series colour (the first palette entry) is drawn somewhere.
  int64_t blue = 0;
  for (size_t i = 0; i + 2 < img.rgb.size(); i += 3) blue += img.rgb[i] == 31 && img.rgb[i + 1] == 119 && img.rgb[i + 2] == 180;
  EXPECT_GT(blue, 100);

  // Unknown column, ragged row, missing file: non-zero exit, the file named.
  r = run_pvm("plot --series " + dir + "/a.csv:position:nope --out " + dir + "/q.png", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("no column 'nope'"), std::string::npos) << r.err;
  std::ofstream(dir + "/bad.csv") << "a,b\n1,2\n3\n";
  r = run_pvm("plot --series " + dir + "/bad.csv:a:b --out " + dir + "/q.png", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("bad.csv"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 3"), std::string::npos) << r.err;
  r = run_pvm("plot --series " + dir + "/missing.csv:a:b --out " + dir + "/q.png", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("missing.csv"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/q.png"));
  fs::remove_all(dir);
}

// Issue 21 classes 1 and 8: a bad config.json next to a checkpoint is a one-line error naming the
// file and the field (exit 1), never SIGFPE, a hang (FIFO) or a runaway allocation; a config that
// disagrees with the checkpoint header fails before the model is allocated, naming the tensor.
TEST(CliInspect, BadConfigIsAOneLineErrorNotACrash) {
  if (pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  auto dir = pvm::testing::temp_dir("badcfg");
  auto cfg = pvm::testing::tiny_config();
  auto m = make_random_model(cfg, 5, torch::kFloat, torch::kCPU);
  save_model(m, dir + "/model", torch::kFloat);
  const std::string good = pvm::testing::slurp(dir + "/model/config.json");
  auto r = run_pvm("inspect --model " + dir + "/model", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    auto p = s.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    if (p != std::string::npos) s.replace(p, from.size(), to);
    std::ofstream(dir + "/model/config.json", std::ios::trunc) << s;
  };
  const std::vector<std::array<std::string, 3>> cases = {
      {"\"num_attention_heads\": 4", "\"num_attention_heads\": 0", "num_attention_heads"},
      {"\"num_key_value_heads\": 2", "\"num_key_value_heads\": 0", "num_key_value_heads"},
      {"\"num_hidden_layers\": 4", "\"num_hidden_layers\": 1000000000", "num_hidden_layers"},
      {"\"hidden_size\": 64", "\"hidden_size\": 1000000000000", "hidden_size"},
      {"\"hidden_size\": 64", "\"hidden_size\": null", "hidden_size"},
      {"\"num_heads\": 4", "\"num_heads\": 0", "num_heads"},
  };
  for (auto& [from, to, field] : cases) {
    with(from, to);
    r = run_pvm("inspect --model " + dir + "/model", dir);
    EXPECT_EQ(r.rc, 1) << to << ": " << r.err;
    EXPECT_NE(r.err.find(dir + "/model/config.json: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(field), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  // config.json as a FIFO: an error, not a hang
  fs::remove(dir + "/model/config.json");
  ASSERT_EQ(::mkfifo((dir + "/model/config.json").c_str(), 0600), 0);
  r = run_pvm("inspect --model " + dir + "/model", dir);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  fs::remove(dir + "/model/config.json");

  // A valid config that disagrees with the checkpoint: load_model fails before allocating, naming the
  // checkpoint file and the tensor.
  with("\"intermediate_size\": 96", "\"intermediate_size\": 200000");
  try {
    load_model(dir + "/model", LoadOptions{});
    ADD_FAILURE() << "loaded";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("mlp.gate_proj.weight"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  with("\"vocab_size\": 320", "\"vocab_size\": 4000000");
  try {
    load_model(dir + "/model", LoadOptions{});
    ADD_FAILURE() << "loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("embed_tokens"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// adapter_config.json: exact types (512.0 / true / "512" are errors, not silently converted), and a
// FIFO is an error rather than a hang.
TEST(CliInspect, AdapterConfigTypesAndFifo) {
  auto dir = pvm::testing::temp_dir("badadapter");
  auto cfg = pvm::testing::tiny_config();
  auto m = make_random_model(cfg, 5, torch::kFloat, torch::kCPU);
  TextConfig f = cfg.text;
  f.pvm_hidden_size = 32, f.pvm_layers = {1, 2};
  attach_pvm(*m, f, 3);
  save_pvm_adapter(*m, dir + "/adapter");
  const std::string good = pvm::testing::slurp(dir + "/adapter/adapter_config.json");
  auto fresh = make_random_model(cfg, 5, torch::kFloat, torch::kCPU);
  ASSERT_NO_THROW(load_pvm_adapter(*fresh, dir + "/adapter"));
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{{"\"pvm_hidden_size\": 32", "\"pvm_hidden_size\": 32.0"},
                                                                          {"\"pvm_hidden_size\": 32", "\"pvm_hidden_size\": true"},
                                                                          {"\"pvm_hidden_size\": 32", "\"pvm_hidden_size\": 1e15"}}) {
    std::string s = good;
    auto p = s.find(from);
    ASSERT_NE(p, std::string::npos) << s;
    std::ofstream(dir + "/adapter/adapter_config.json", std::ios::trunc) << s.replace(p, from.size(), to);
    auto fresh2 = make_random_model(cfg, 5, torch::kFloat, torch::kCPU);
    try {
      load_pvm_adapter(*fresh2, dir + "/adapter");
      ADD_FAILURE() << to << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("adapter_config.json"), std::string::npos) << e.what();
    }
  }
  fs::remove(dir + "/adapter/adapter_config.json");
  ASSERT_EQ(::mkfifo((dir + "/adapter/adapter_config.json").c_str(), 0600), 0);
  auto fresh3 = make_random_model(cfg, 5, torch::kFloat, torch::kCPU);
  try {
    load_pvm_adapter(*fresh3, dir + "/adapter");
    ADD_FAILURE() << "FIFO accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
