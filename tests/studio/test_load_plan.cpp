// Opening real checkpoints in the studio: the memory plan read before loading (config + safetensors
// headers) equals what the loaded model holds, a load reports byte progress and can be cancelled
// (no model then), and a folder that is not a Qwen3-VL checkpoint gets a one-line status error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "app/studio/session.h"
#include "tests/cli_util.h"

using namespace pvm::studio;
namespace fs = std::filesystem;

namespace {
struct Dir {
  fs::path p;
  explicit Dir(const std::string& tag) : p(fs::temp_directory_path() / ("pvm_plan_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(p);
    fs::create_directories(p);
  }
  ~Dir() { fs::remove_all(p); }
};
}  // namespace

TEST(LoadPlan, EstimateMatchesTheLoadedModelAndCancelLeavesNoModel) {
  if (pvm::testing::pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found";
  Dir d("ckpt");
  // A deeper shape than the default (12 layers of the tiny widths, real vocabulary), in shards.
  const std::string m = (d.p / "m").string();
  auto r = pvm::testing::run_pvm("init --preset qwen3-vl-tiny --layers 12 --shard-mb 8 --dtype bf16 --out " + m, d.p.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  Session s;
  std::string why;
  LoadRequest lr;
  lr.dir = m, lr.device = "cpu", lr.dtype = "f32";
  ASSERT_TRUE(s.inspect_model(lr, &why)) << why;
  s.wait_idle();
  UiState ui;
  s.sync(ui);
  ASSERT_TRUE(ui.plan.ready) << ui.plan.error;
  EXPECT_FALSE(ui.model.loaded) << "inspecting loads nothing";
  EXPECT_GT(ui.plan.file_bytes, 0);
  EXPECT_NE(ui.plan.summary.find("12 layers"), std::string::npos) << ui.plan.summary;
  EXPECT_GE(ui.plan.available_bytes, 0) << "MemAvailable is read on Linux";
  EXPECT_EQ(ui.plan.need_bytes > ui.plan.weight_bytes + ui.plan.kv_bytes, true);

  // Cancel at 40% of the bytes: the load stops at the next block, and no model is left loaded.
  lr.cancel_at = 0.4;
  ASSERT_TRUE(s.load_model(lr, &why)) << why;
  s.wait_idle();
  s.sync(ui);
  EXPECT_FALSE(ui.model.loaded);
  EXPECT_EQ(ui.load.state, "cancelled");
  EXPECT_GE(ui.load.fraction, 0.4f);
  EXPECT_LT(ui.load.fraction, 1.0f);
  EXPECT_GT(ui.load.total_bytes, 0);
  EXPECT_NE(ui.status.message.find("loading cancelled at"), std::string::npos) << ui.status.message;
  EXPECT_TRUE(ui.status.error.empty()) << "a cancel is not an error";

  // A full load: the estimate's weights are exactly what the model holds.
  lr.cancel_at = -1;
  ASSERT_TRUE(s.load_model(lr, &why)) << why;
  s.wait_idle();
  s.sync(ui);
  ASSERT_TRUE(ui.model.loaded) << ui.status.error;
  EXPECT_EQ(ui.load.state, "loaded");
  EXPECT_EQ(ui.load.done_bytes, ui.load.total_bytes);
  EXPECT_EQ(ui.model.weight_bytes, ui.plan.weight_bytes);
  EXPECT_EQ(ui.model.params.at("total"), ui.plan.params);
}

TEST(LoadPlan, NotAQwen3VlCheckpointIsAStatusLineError) {
  Dir d("bad");
  Session s;
  std::string why;
  LoadRequest lr;
  // No config.json: refused at once, naming the folder.
  lr.dir = d.p.string();
  EXPECT_FALSE(s.inspect_model(lr, &why));
  EXPECT_NE(why.find("no config.json"), std::string::npos) << why;
  EXPECT_NE(why.find(d.p.string()), std::string::npos) << why;
  // Another architecture: the engine's message in the status line.
  std::ofstream(d.p / "config.json") << R"({"model_type": "llama", "hidden_size": 64})";
  ASSERT_TRUE(s.inspect_model(lr, &why)) << why;
  s.wait_idle();
  UiState ui;
  s.sync(ui);
  EXPECT_FALSE(ui.plan.ready);
  EXPECT_NE(ui.plan.error.find("model_type 'llama' is not supported"), std::string::npos) << ui.plan.error;
  EXPECT_EQ(ui.status.message.rfind("error: ", 0), 0u) << ui.status.message;
  EXPECT_NE(ui.status.message.find("config.json"), std::string::npos) << ui.status.message;
  // A Qwen3-VL config without weights.
  auto r = pvm::testing::run_pvm("init --preset qwen3-vl-tiny --out " + (d.p / "m").string(), d.p.string());
  if (r.rc == 0) {
    fs::remove(d.p / "m" / "model.safetensors");
    lr.dir = (d.p / "m").string();
    ASSERT_TRUE(s.inspect_model(lr, &why)) << why;
    s.wait_idle();
    s.sync(ui);
    EXPECT_FALSE(ui.plan.ready);
    EXPECT_FALSE(ui.plan.error.empty());
    EXPECT_EQ(ui.status.message.rfind("error: ", 0), 0u) << ui.status.message;
  }
}
