#include "engine/optimizer.h"

#include <cmath>

#include "engine/base/error.h"

namespace pvm::train {

void AdamW::add(const std::string& name, const torch::Tensor& param, bool decay, double lr_scale) {
  Param p;
  p.name = name;
  p.param = param;
  if (p.param.scalar_type() != torch::kFloat) p.master = p.param.detach().to(torch::kFloat).clone();
  p.exp_avg = torch::zeros_like(p.value());
  p.exp_avg_sq = torch::zeros_like(p.value());
  p.decay = decay;
  p.lr_scale = lr_scale;
  ps_.push_back(std::move(p));
}

void AdamW::step(double lr) {
  torch::NoGradGuard ng;
  ++steps_;
  const double bc1 = 1 - std::pow(o_.beta1, (double)steps_), bc2 = 1 - std::pow(o_.beta2, (double)steps_);
  const double step_size = lr / bc1, bc2_sqrt = std::sqrt(bc2);
  for (auto& p : ps_) {
    auto& w = p.value();
    torch::Tensor g = p.param.grad();
    if (!g.defined()) g = torch::zeros_like(w);
    else if (g.scalar_type() != w.scalar_type()) g = g.to(w.scalar_type());
    if (p.decay && o_.weight_decay != 0) w.mul_(1 - lr * p.lr_scale * o_.weight_decay);
    p.exp_avg.mul_(o_.beta1).add_(g, 1 - o_.beta1);
    p.exp_avg_sq.mul_(o_.beta2).addcmul_(g, g, 1 - o_.beta2);
    auto denom = (p.exp_avg_sq.sqrt() / bc2_sqrt).add_(o_.eps);
    w.addcdiv_(p.exp_avg, denom, -step_size * p.lr_scale);
    if (p.master.defined()) p.param.copy_(p.master);
  }
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, torch::Tensor>> ts;
  for (auto& p : ps_) {
    ts.emplace_back("exp_avg." + p.name, p.exp_avg);
    ts.emplace_back("exp_avg_sq." + p.name, p.exp_avg_sq);
    if (p.master.defined()) ts.emplace_back("master." + p.name, p.master);
  }
  return ts;
}

void AdamW::check_state(const std::map<std::string, torch::Tensor>& ts, const std::string& file) const {
  // copy_ would broadcast a wrong shape silently, so shapes are compared here.
  auto check = [&](const std::string& key, const torch::Tensor& like) {
    auto it = ts.find(key);
    if (it == ts.end()) throw file_error(file, "no tensor " + key);
    if (!it->second.sizes().equals(like.sizes()))
      throw file_error(file, "tensor " + key + " has shape " + c10::str(it->second.sizes()) + " but the parameter has " +
                                 c10::str(like.sizes()));
    if (!it->second.is_floating_point() || !torch::isfinite(it->second).all().item<bool>())
      throw file_error(file, "tensor " + key + " is not finite floating point");
  };
  for (auto& p : ps_) {
    check("exp_avg." + p.name, p.exp_avg);
    check("exp_avg_sq." + p.name, p.exp_avg_sq);
    if (p.master.defined()) check("master." + p.name, p.master);
  }
}

void AdamW::load_state(const std::map<std::string, torch::Tensor>& ts, int64_t steps) {
  steps_ = steps;
  torch::NoGradGuard ng;
  for (auto& p : ps_) {
    p.exp_avg.copy_(ts.at("exp_avg." + p.name));
    p.exp_avg_sq.copy_(ts.at("exp_avg_sq." + p.name));
    if (p.master.defined()) {
      p.master.copy_(ts.at("master." + p.name));
      p.param.copy_(p.master);
    }
  }
}

}  // namespace pvm::train
