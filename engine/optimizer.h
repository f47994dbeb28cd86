// AdamW exactly as torch.optim.AdamW (single-tensor path): decoupled weight decay, bias
// corrections. Parameters in a low-precision dtype (bf16 on CUDA) train through an f32 master copy,
// and the moments are kept in that master's dtype. Its state is saved by parameter name, so a
// checkpoint is checked against the run's trainable set before anything is copied.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/torch_pch.h"

namespace pvm::train {

class AdamW {
 public:
  struct Options {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  };
  AdamW() = default;
  explicit AdamW(Options o) : o_(o) {}

  // `decay`: weight decay applies to this parameter (the trainer: matrices only); `lr_scale`
  // multiplies the learning rate for it (visual_lr_scale).
  void add(const std::string& name, const torch::Tensor& param, bool decay, double lr_scale = 1.0);
  // One update from the parameters' .grad() (an undefined gradient counts as zero).
  void step(double lr);

  int64_t steps() const { return steps_; }  // updates taken (bias corrections count from it)

  // State tensors by name: exp_avg.NAME, exp_avg_sq.NAME and master.NAME (f32 masters only).
  std::vector<std::pair<std::string, torch::Tensor>> state() const;
  // Every tensor `ts` must hold for this parameter set: present, same shape, finite floating
  // point; errors name `file`. Nothing is copied, so a bad checkpoint leaves the run untouched.
  void check_state(const std::map<std::string, torch::Tensor>& ts, const std::string& file) const;
  // Copies a checked state in (masters back into the parameters) and sets the step count.
  void load_state(const std::map<std::string, torch::Tensor>& ts, int64_t steps);

 private:
  struct Param {
    std::string name;
    torch::Tensor param, master, exp_avg, exp_avg_sq;
    bool decay = false;
    double lr_scale = 1.0;
    torch::Tensor& value() { return master.defined() ? master : param; }
  };
  Options o_;
  std::vector<Param> ps_;
  int64_t steps_ = 0;
};

}  // namespace pvm::train
