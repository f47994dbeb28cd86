// Dilution view: visual attention mass against the generated position, baseline and PVM (and the
// VisMem arm when there is one, with its memory mass: attention on the latent rows, and its
// invocation points as markers on the curves) overlaid:
// the mean of layers, every layer, or picked layers; per head of one layer on demand; with or
// without sink tokens; smoothing; linear or log axes; the c/(t+t0) least-squares fit of each side's
// mean (engine/base/dilution.h, the same code as `pvm dilution`). Grows live while tokens stream (rebuilt at most every 0.25 s, the fit every second).
#pragma once
#include <string>
#include <vector>

#include "engine/base/dilution.h"
#include "views/plot.h"
#include "views/studio_state.h"
#include "views/view.h"

namespace pvm::studio {

class DilutionView : public View {
 public:
  explicit DilutionView(StudioContext& ctx);
  void draw() override;
  Plot& plot() { return plot_; }
  // Rebuilds the series from the UI state now (the bench and tests call it directly).
  void rebuild(bool with_fit);
  HyperbolicFit fit(int side) const { return fit_[side]; }
  // Index of the memory-mass series of the VisMem arm in plot(), -1 when not shown.
  int memory_series() const { return memory_series_; }
  // One side's answer as the engine's dilution analysis sees it (token i at step i).
  static DilutionCurves dilution_curves(const SideData& sd);

  enum LayerMode { Mean = 0, All = 1, Picked = 2 };
  int layer_mode = Mean;
  std::vector<bool> picked;   // per layer, for Picked
  int head_layer = -1;        // >= 0: per-head curves of this layer (needs per-head probes)
  bool nosink = false, show_fit = true, log_x = false, log_y = false;
  bool show_side[kSides] = {true, true, true};
  bool show_memory = true;    // the VisMem arm's attention on its latent rows (mean of layers)
  int smoothing = 1;          // moving-average window in tokens (1 = none)

 private:
  void draw_invocations(ImDrawList* dl);
  StudioContext& ctx_;
  Plot plot_;
  HyperbolicFit fit_[kSides];
  int mean_series_[kSides] = {-1, -1, -1};  // the mean-of-layers series per side (markers sit on it)
  int memory_series_ = -1;
  // What the series were built from: rebuild when any of it changes.
  uint64_t built_run_ = ~0ull;
  size_t built_n_[kSides] = {0, 0, 0};
  std::string built_key_;
  double built_time_ = -1e9, fit_time_ = -1e9;
};

}  // namespace pvm::studio
