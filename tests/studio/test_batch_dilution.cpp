// The studio's batch dilution (Session::run_batch -> engine run_dilution, the view's curves, band and
// fits) against `pvm dilution` on the same model, scenes and settings: the same per-token mass, the
// same fits.csv rows, and the band's mean equal to the CLI's per-position mean over images.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "app/studio/session.h"
#include "tests/cli_util.h"
#include "views/view_batch_dilution.h"

using namespace pvm::studio;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, sep);) v.push_back(x);
  return v;
}

struct TinyModel {
  fs::path dir;
  std::string model;
  explicit TinyModel(const std::string& tag) {
    dir = fs::temp_directory_path() / ("pvm_batch_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    model = (dir / "model").string();
  }
  ~TinyModel() { fs::remove_all(dir); }
};

}  // namespace

TEST(BatchDilution, StudioBatchEqualsCli) {
  using pvm::testing::run_pvm;
  if (pvm::testing::pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  TinyModel t("eq");
  auto r = run_pvm("init --preset qwen3-vl-tiny --pvm-layers 1,3 --seed 3 --out " + t.model, t.dir.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  const int n = 10, scenes = 3;
  const std::string cli = (t.dir / "cli").string(), studio = (t.dir / "studio").string();
  r = run_pvm("dilution --model " + t.model + " --scenes " + std::to_string(scenes) + " --scene-seed 5 --objects 2-6" +
                  " --max-new-tokens " + std::to_string(n) + " --device cpu --dtype f32 --quiet --out " + cli,
              t.dir.string());
  ASSERT_EQ(r.rc, 0) << r.err;

  Session s;
  std::string why;
  LoadRequest lr;
  lr.dir = t.model, lr.device = "cpu", lr.dtype = "f32";
  ASSERT_TRUE(s.load_model(lr, &why)) << why;
  s.wait_idle();
  BatchSettings b;
  b.scenes = scenes, b.scene_seed = 5, b.min_objects = 2, b.max_objects = 6;
  b.max_new_tokens = n;
  b.out_dir = studio;
  ASSERT_TRUE(s.run_batch(b, &why)) << why;
  s.wait_idle();
  UiState ui;
  s.sync(ui);
  ASSERT_TRUE(ui.status.error.empty()) << ui.status.error;
  const BatchData& bd = ui.batch;
  EXPECT_EQ(bd.finish, "done");
  ASSERT_EQ(bd.images.size(), size_t(scenes));
  ASSERT_EQ(bd.answers.size(), size_t(2 * scenes));
  EXPECT_EQ(bd.tokens_done, bd.tokens_total);
  // The same scene images.
  for (int i = 0; i < scenes; ++i)
    EXPECT_EQ(pvm::testing::slurp(bd.images[i]),
              pvm::testing::slurp(cli + "/images/" + fs::path(bd.images[i]).filename().string()))
        << bd.images[i];

  // Per token and layer, and per position the mean over images and layers (the band's mean).
  for (int side = 0; side < 2; ++side) {
    std::map<std::pair<std::string, int>, std::vector<double>> cli_mass;  // (image, step) -> per layer
    std::map<int, std::pair<double, int>> cli_mean;                       // step -> sum, count
    auto lines = split(pvm::testing::slurp(cli + (side ? "/mass_pvm.csv" : "/mass_baseline.csv")), '\n');
    for (size_t i = 1; i < lines.size(); ++i) {
      if (lines[i].empty()) continue;
      auto f = split(lines[i], ',');
      ASSERT_EQ(f.size(), 5u);
      cli_mass[{f[0], std::stoi(f[1])}].push_back(std::stod(f[3]));
      cli_mean[std::stoi(f[1])].first += std::stod(f[3]);
      cli_mean[std::stoi(f[1])].second += 1;
    }
    size_t checked = 0;
    for (const BatchAnswer& a : bd.answers) {
      if (a.side != side) continue;
      const std::string img = fs::path(bd.images[a.image]).filename().string();
      ASSERT_EQ(a.mass.size(), size_t(n));
      for (size_t st = 0; st < a.mass.size(); ++st) {
        const auto& want = cli_mass[{img, int(st)}];
        ASSERT_EQ(want.size(), a.mass[st].size()) << img << " step " << st;
        for (size_t l = 0; l < want.size(); ++l) EXPECT_NEAR(a.mass[st][l], want[l], 1e-7) << img << " " << st << " " << l;
        ++checked;
      }
    }
    EXPECT_EQ(checked, size_t(scenes * n));
    const pvm::DilutionBand band = pvm::dilution_band(batch_answer_curves(bd, side, -1, false));
    ASSERT_EQ(band.t.size(), size_t(n));
    for (size_t i = 0; i < band.t.size(); ++i) {
      const auto& [sum, cnt] = cli_mean[int(band.t[i]) - 1];
      EXPECT_NEAR(band.mean[i], sum / cnt, 1e-7) << "side " << side << " t " << band.t[i];
      EXPECT_EQ(band.n[i], scenes);
      EXPECT_LT(band.lo[i], band.mean[i]);
      EXPECT_GT(band.hi[i], band.mean[i]);
    }
  }

  // The view's fits are the CLI's fits.csv rows, digit for digit; the engine's own file agrees too.
  const std::string fits = pvm::testing::slurp(cli + "/fits.csv");
  const std::string mine = "run,layer,series,c,t0,r2_hyperbolic,power_a,power_k,r2_power,points\n" +
                           batch_fits_csv(bd, 0) + batch_fits_csv(bd, 1);
  EXPECT_EQ(mine, fits);
  EXPECT_EQ(bd.fits_csv, fits);
  EXPECT_EQ(pvm::testing::slurp(studio + "/fits.csv"), fits);
  EXPECT_EQ(pvm::testing::slurp(studio + "/mass_pvm.csv"), pvm::testing::slurp(cli + "/mass_pvm.csv"));
}

TEST(BatchDilution, CancelStopsAtTheNextTokenAndKeepsWhatWasMeasured) {
  using pvm::testing::run_pvm;
  if (pvm::testing::pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found";
  TinyModel t("cancel");
  auto r = run_pvm("init --preset qwen3-vl-tiny --pvm-layers 1 --seed 1 --out " + t.model, t.dir.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  Session s;
  std::string why;
  LoadRequest lr;
  lr.dir = t.model, lr.device = "cpu", lr.dtype = "f32";
  ASSERT_TRUE(s.load_model(lr, &why)) << why;
  s.wait_idle();
  BatchSettings b;
  b.scenes = 4, b.max_new_tokens = 120;
  b.out_dir = (t.dir / "out").string();
  ASSERT_TRUE(s.run_batch(b, &why)) << why;
  UiState ui;
  const auto t0 = std::chrono::steady_clock::now();
  while (ui.batch.answers.empty() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    s.sync(ui);
  }
  ASSERT_FALSE(ui.batch.answers.empty());
  EXPECT_FALSE(s.run_batch(b, &why)) << "a second batch while one runs";
  s.stop();
  s.wait_idle();
  s.sync(ui);
  EXPECT_EQ(ui.batch.finish, "cancelled");
  EXPECT_FALSE(ui.batch.running);
  EXPECT_LT(ui.batch.answers.size(), 8u);
  EXPECT_LT(ui.batch.tokens_done, ui.batch.tokens_total);
  EXPECT_NE(ui.status.message.find("batch cancelled"), std::string::npos) << ui.status.message;
  EXPECT_TRUE(fs::exists(b.out_dir + "/fits.csv")) << "what was measured is written, as the CLI does on Ctrl-C";
}

TEST(BatchDilution, BadSettingsAreRefusedUpFront) {
  Session s;
  std::string why;
  BatchSettings b;
  b.out_dir = "/tmp/x";
  EXPECT_FALSE(s.run_batch(b, &why));
  EXPECT_NE(why.find("no model loaded"), std::string::npos) << why;
  LoadRequest lr;
  lr.dir = kRandomModel;
  ASSERT_TRUE(s.load_model(lr, &why)) << why;
  s.wait_idle();
  auto refused = [&](BatchSettings x, const char* part) {
    std::string w;
    EXPECT_FALSE(s.run_batch(x, &w));
    EXPECT_NE(w.find(part), std::string::npos) << w;
  };
  BatchSettings x = b;
  x.max_new_tokens = 1;
  refused(x, "max new tokens");
  x = b, x.scenes = 0;
  refused(x, "number of scenes");
  x = b, x.min_objects = 6, x.max_objects = 3;
  refused(x, "objects");
  x = b, x.out_dir.clear();
  refused(x, "output folder");
  // A folder without images: the engine's message, as a status-line error.
  const fs::path empty = fs::temp_directory_path() / ("pvm_batch_empty_" + std::to_string(::getpid()));
  fs::create_directories(empty);
  x = b, x.images = {empty.string()};
  ASSERT_TRUE(s.run_batch(x, &why)) << why;
  s.wait_idle();
  UiState ui;
  s.sync(ui);
  EXPECT_EQ(ui.batch.finish, "error");
  EXPECT_NE(ui.status.error.find("holds no .png"), std::string::npos) << ui.status.error;
  fs::remove_all(empty);
}
