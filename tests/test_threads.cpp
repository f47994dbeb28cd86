// CPU intra-op threads: small decoders run on one thread (operators too small to split), real sizes
// on all cores; `--threads` overrides and is range-checked before the model loads.
#include <gtest/gtest.h>

#include <thread>

#include "cli_util.h"
#include "engine/base/config.h"
#include "engine/base/error.h"
#include "engine/pipeline.h"
#include "test_util.h"

using namespace pvm;

TEST(Threads, DefaultFollowsTheDecoderSize) {
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  EXPECT_EQ(default_cpu_threads(preset_config("qwen3-vl-2b")), cores);
  ModelConfig small = preset_config("qwen3-vl-2b");
  small.text.hidden_size = 256;  // the default model's width
  EXPECT_EQ(default_cpu_threads(small), 1);
}

TEST(Threads, OpenPipelineSetsThemAndTheCliChecksTheRange) {
  if (default_model_dir().empty()) GTEST_SKIP() << "assets/default-model not present";
  const int before = at::get_num_threads();
  OpenOptions o;
  o.quiet = true;
  o.threads = 2;
  open_pipeline(o);
  EXPECT_EQ(at::get_num_threads(), 2);
  o.threads = 0;  // automatic: the default model is small
  open_pipeline(o);
  EXPECT_EQ(at::get_num_threads(), 1);
  o.threads = -3;
  EXPECT_THROW(open_pipeline(o), Error);
  at::set_num_threads(before);

  if (pvm::testing::pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  auto dir = pvm::testing::temp_dir("threads");
  auto r = pvm::testing::run_pvm("generate --threads 5000 --prompt hi --max-new-tokens 2", dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("--threads must be in 1..1024"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("loading"), std::string::npos) << "checked before the model loads: " << r.err;
  r = pvm::testing::run_pvm("generate --threads 1 --prompt hi --max-new-tokens 2 --json", dir);
  EXPECT_EQ(r.rc, 0) << r.err;
}
