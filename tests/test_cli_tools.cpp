// pvm convert (dtype change, adapter merge) and pvm plot (CSV -> PNG), run as the CLI.
#include <gtest/gtest.h>

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
  ForwardState st;
  return m->forward(in, st).logits[0];
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
