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
  // One row (a decode step): LibTorch 1.13 sends M=1 addmm to GEMM, which OpenBLAS runs ~3x slower
  // than GEMV on this weight-bound shape (measured in experiments/bench). Use mv directly.
  if (x.numel() == x.size(-1) && x.device().is_cpu()) {
    auto sizes = x.sizes().vec();
    sizes.back() = weight.size(0);
    auto y = torch::mv(weight, x.reshape({-1}));
    if (bias.defined()) y = y + bias;
    return y.view(sizes);
  }
  return torch::nn::functional::linear(x, weight, bias);
}

EmbeddingImpl::EmbeddingImpl(int64_t num, int64_t dim) {
  weight = register_parameter("weight", torch::empty({num, dim}, param_options()));
}

}  // namespace pvm
