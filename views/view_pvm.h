// PVM activity view: what the PVM blocks do while the answer grows, per PVM layer against the
// generated position: |gate_alpha|, the injection ratio ||PVM output|| / ||residual||, the entropy
// of the PVM attention over the visual memory; and the logit-lens convergence layer (first layer
// whose top-1 equals the final one) of both sides.
#pragma once
#include <memory>
#include <string>

#include "views/plot.h"
#include "views/studio_state.h"
#include "views/view.h"

namespace pvm::studio {

class PvmActivityView : public View {
 public:
  explicit PvmActivityView(StudioContext& ctx);
  void draw() override;
  void rebuild();
  Plot& gate_plot() { return gate_; }
  Plot& ratio_plot() { return ratio_; }
  Plot& entropy_plot() { return entropy_; }
  Plot& lens_plot() { return lens_; }
  int smoothing = 1;

 private:
  StudioContext& ctx_;
  Plot gate_, ratio_, entropy_, lens_;
  uint64_t built_run_ = ~0ull;
  size_t built_n_[2] = {0, 0};
  double built_time_ = -1e9;
};

}  // namespace pvm::studio
