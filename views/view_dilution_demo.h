// Placeholder for the dilution view: the plot widget on synthetic c/(t+t0) curves (36 layers x
// 16k positions) until the engine can produce real per-layer attention-to-image curves.
#pragma once
#include <string>

#include "views/plot.h"
#include "views/view.h"

namespace pvm::studio {

class DilutionDemoView : public View {
 public:
  static constexpr int kLayers = 36;
  static constexpr int kPoints = 16384;

  DilutionDemoView();
  void draw() override;
  Plot& plot() { return plot_; }
  // Drives the orange cursor as a token view will later; NaN clears it.
  void set_demo_cursor(double x);

 private:
  void build_data();
  Plot plot_;
  bool log_x_ = true, log_y_ = true;
  bool cursor_on_ = false;
  float cursor_ = 2048.0f;
  std::string export_base_ = "dilution_demo";
};

}  // namespace pvm::studio
