// `pvm dilution` (the CLI path) and the studio (Session + Dilution view) on the same model, image,
// prompt and length give the same visual mass per token and the same c/(t+t0) fit: both are thin
// drivers of the engine's probes and dilution analysis (engine/dilution.h, engine/base/dilution.h).
#include <gtest/gtest.h>
#include <imgui.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "app/studio/session.h"
#include "engine/image.h"
#include "engine/image_write.h"
#include "tests/cli_util.h"
#include "views/view_dilution.h"

using namespace pvm::studio;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, sep);) v.push_back(x);
  return v;
}

}  // namespace

TEST(DilutionPaths, CliAndStudioGiveTheSameNumbers) {
  using pvm::testing::run_pvm;
  if (pvm::testing::pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  const fs::path dir = fs::temp_directory_path() / ("pvm_dilution_paths_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string model = (dir / "model").string(), image = (dir / "img.png").string();
  const std::string out = (dir / "out").string();
  auto r = run_pvm("init --preset qwen3-vl-tiny --pvm-layers 1,3 --seed 3 --out " + model, dir.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  pvm::ImageRGB img;
  img.width = 64, img.height = 48;
  img.rgb.resize(size_t(img.width) * img.height * 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = uint8_t((i * 37) % 251);
  pvm::write_png(image, img);
  const int n = 12;
  r = run_pvm("dilution --model " + model + " --images " + image + " --prompt 'Describe the image.' --max-new-tokens " +
                  std::to_string(n) + " --stop-at-eos --device cpu --dtype f32 --quiet --out " + out,
              dir.string());
  ASSERT_EQ(r.rc, 0) << r.err;

  // The studio: the same model folder, the same pixels, greedy, baseline and PVM.
  Session s;
  std::string why;
  LoadRequest lr;
  lr.dir = model, lr.device = "cpu", lr.dtype = "f32";
  ASSERT_TRUE(s.load_model(lr, &why)) << why;
  s.wait_idle();
  GenerateSettings g;
  g.prompt = "Describe the image.";
  const pvm::ImageRGB back = pvm::load_image(image);
  g.image.width = back.width, g.image.height = back.height, g.image.rgb = back.rgb, g.image.source = image;
  g.max_new_tokens = n;
  g.heatmap = false;
  ASSERT_TRUE(s.generate(g, &why)) << why;
  s.wait_idle();
  UiState ui;
  s.sync(ui);
  ASSERT_TRUE(ui.status.error.empty()) << ui.status.error;

  // Per token and layer: mass_<run>.csv rows "image,step,layer,mass,mass_nosink".
  for (int side = 0; side < 2; ++side) {
    const SideData& sd = ui.side[side];
    ASSERT_FALSE(sd.tokens.empty());
    auto lines = split(pvm::testing::slurp(out + (side ? "/mass_pvm.csv" : "/mass_baseline.csv")), '\n');
    size_t rows = 0;
    for (size_t i = 1; i < lines.size(); ++i) {
      if (lines[i].empty()) continue;
      auto f = split(lines[i], ',');
      ASSERT_EQ(f.size(), 5u) << lines[i];
      const size_t step = std::stoul(f[1]), layer = std::stoul(f[2]);
      ASSERT_LT(step, sd.tokens.size()) << "the CLI generated more tokens than the studio";
      ASSERT_LT(layer, sd.tokens[step].mass.size());
      EXPECT_NEAR(std::stod(f[3]), sd.tokens[step].mass[layer], 1e-6) << "side " << side << " " << lines[i];
      EXPECT_NEAR(std::stod(f[4]), sd.tokens[step].mass_nosink[layer], 1e-6) << "side " << side << " " << lines[i];
      ++rows;
    }
    EXPECT_EQ(rows, sd.tokens.size() * sd.tokens[0].mass.size()) << "side " << side;
  }

  // Fits: fits.csv "run,layer,series,c,t0,r2_hyperbolic,..." against the view's fit of each side.
  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  StudioContext ctx;
  ctx.ui = &ui;
  DilutionView view(ctx);
  view.rebuild(true);
  std::map<std::string, std::vector<std::string>> fit_rows;
  for (auto& ln : split(pvm::testing::slurp(out + "/fits.csv"), '\n')) {
    auto f = split(ln, ',');
    if (f.size() >= 6 && f[1] == "mean" && f[2] == "mass") fit_rows[f[0]] = f;
  }
  ASSERT_EQ(fit_rows.size(), 2u);
  for (int side = 0; side < 2; ++side) {
    const auto& f = fit_rows[side ? "pvm" : "baseline"];
    const pvm::HyperbolicFit h = view.fit(side);
    ASSERT_GE(h.n, 3);
    EXPECT_NEAR(std::stod(f[3]), h.c, 1e-6 * std::max(1.0, std::fabs(h.c))) << "c, side " << side;
    EXPECT_NEAR(std::stod(f[4]), h.t0, 1e-6 * std::max(1.0, std::fabs(h.t0))) << "t0, side " << side;
    EXPECT_NEAR(std::stod(f[5]), h.r2, 1e-6) << "r2, side " << side;
  }
  ImGui::DestroyContext();
  fs::remove_all(dir);
}
