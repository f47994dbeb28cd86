#include "engine/nn.h"

namespace pvm {

static thread_local torch::TensorOptions g_param_options = torch::TensorOptions().dtype(torch::kFloat);

torch::TensorOptions param_options() { return g_param_options; }
ParamOptionsGuard::ParamOptionsGuard(torch::TensorOptions o) : prev_(g_param_options) { g_param_options = o; }
ParamOptionsGuard::~ParamOptionsGuard() { g_param_options = prev_; }

LinearImpl::LinearImpl(int64_t in, int64_t out, bool has_bias) {
  weight = register_parameter("weight", torch::empty({out, in}, param_options()));
  if (has_bias) bias = register_parameter("bias", torch::zeros({out}, param_options()));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) { return linear_rows(x, weight, bias); }

torch::Tensor linear_rows(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  // LibTorch 2.x runs one-row addmm as fast as or faster than torch::mv (the 1.13 GEMV detour lost
  // up to 1.5x on the bf16 lm_head: experiments/bench/RESULTS_platform.md).
  return torch::nn::functional::linear(x, weight, bias);
}

EmbeddingImpl::EmbeddingImpl(int64_t num, int64_t dim) {
  weight = register_parameter("weight", torch::empty({num, dim}, param_options()));
}

}  // namespace pvm
