// Batch dilution view: `pvm dilution` in the studio. Pick a folder of images or N new scenes (seed,
// object range), run baseline and PVM on each on the session's model worker (Engine::run_batch,
// the engine's run_dilution: the same code and files as the CLI) with progress, ETA and cancel,
// and see the mean curve of each side with its 95% band over images, per-image curves on demand,
// and the c/(t+t0) and power-law fits per layer (engine/base/dilution.h, the numbers of the CLI's
// fits.csv). Export: the plot as PNG and CSV, the fits as CSV.
#pragma once
#include <string>
#include <vector>

#include "engine/base/dilution.h"
#include "views/file_browser.h"
#include "views/plot.h"
#include "views/studio_state.h"
#include "views/view.h"

namespace pvm::studio {

// One side's answers as the CLI's analysis sees them: every answer's tokens added in answer order.
DilutionCurves batch_curves(const BatchData& b, int side);
// One side's per-answer curves (one layer, or the mean of layers; with or without sinks).
std::vector<DilutionCurve> batch_answer_curves(const BatchData& b, int side, int64_t layer, bool nosink);
// The fits of fits.csv for one side: rows "layer or mean" x {mass, mass_nosink}, as the CLI writes them
// ("run,layer,series,c,t0,r2_hyperbolic,power_a,power_k,r2_power,points", without the header).
std::string batch_fits_csv(const BatchData& b, int side);

class BatchDilutionView : public View {
 public:
  explicit BatchDilutionView(StudioContext& ctx);
  void draw() override;
  Plot& plot() { return plot_; }
  void rebuild();
  // The settings of the next run (the form); start() posts them to the engine.
  BatchSettings form;
  bool use_folder = false;  // else new scenes
  std::string folder;
  bool start(std::string* why = nullptr);
  // Plot PNG + CSV and fits CSV under base (base.png, base.csv, base_fits.csv). The PNG is written
  // while the next frame draws the plot.
  bool export_files(const std::string& base, std::string* error);

  int layer = -1;  // -1: mean of layers
  bool nosink = false, per_image = false, band = true, log_x = false, log_y = false;

 private:
  void draw_form();
  void draw_fits();

  StudioContext& ctx_;
  Plot plot_;
  FileBrowser browser_;
  uint64_t built_id_ = ~0ull;
  size_t built_answers_ = ~size_t(0);
  std::string built_key_;
  double built_time_ = -1e9;
  struct FitRow {
    int64_t layer;  // -1 mean
    DilutionFit fit[2];
    bool has[2] = {false, false};
  };
  std::vector<FitRow> fits_;
};

}  // namespace pvm::studio
