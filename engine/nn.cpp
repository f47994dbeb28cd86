#include "engine/nn.h"

#include <ATen/CPUGeneratorImpl.h>

#include "engine/cpu_gemv.h"

namespace pvm {

static thread_local torch::TensorOptions g_param_options = torch::TensorOptions().dtype(torch::kFloat);

torch::TensorOptions param_options() { return g_param_options; }
ParamOptionsGuard::ParamOptionsGuard(torch::TensorOptions o) : prev_(g_param_options) { g_param_options = o; }
ParamOptionsGuard::~ParamOptionsGuard() { g_param_options = prev_; }

LinearImpl::LinearImpl(int64_t in, int64_t out, bool has_bias) {
  weight = register_parameter("weight", torch::empty({out, in}, param_options()));
  if (has_bias) bias = register_parameter("bias", torch::zeros({out}, param_options()));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  auto y = linear_rows(x, weight, bias);
  return delta ? y + (*delta)(x) : y;
}

torch::Tensor linear_rows(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  // Decode (a few rows) on an AVX-512 CPU: our weight-streaming loops, 1.4x oneDNN's one-row matmul
  // (experiments/bench/RESULTS_cpu.md). Everything else, and anything that needs a gradient: torch.
  if (auto y = cpu_gemv(x, weight, bias)) return *y;
  return torch::nn::functional::linear(x, weight, bias);
}

EmbeddingImpl::EmbeddingImpl(int64_t num, int64_t dim) {
  weight = register_parameter("weight", torch::empty({num, dim}, param_options()));
}

Conv3dImpl::Conv3dImpl(int64_t in, int64_t out, std::vector<int64_t> k) : kernel(std::move(k)) {
  weight = register_parameter("weight", torch::empty({out, in, kernel[0], kernel[1], kernel[2]}, param_options()));
  bias = register_parameter("bias", torch::zeros({out}, param_options()));
}

// The call torch::nn::Conv3d makes (zero padding, dilation 1, one group), stride = kernel.
torch::Tensor Conv3dImpl::forward(const torch::Tensor& x) { return torch::conv3d(x, weight, bias, kernel); }

LayerNormImpl::LayerNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}, param_options()));
  bias = register_parameter("bias", torch::zeros({dim}, param_options()));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}, param_options()));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto xf = x.to(torch::kFloat);
  xf = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return weight * xf.to(x.scalar_type());
}

GatedMLPImpl::GatedMLPImpl(int64_t hidden, int64_t inter) {
  gate_proj = register_module("gate_proj", Linear(hidden, inter, false));
  up_proj = register_module("up_proj", Linear(hidden, inter, false));
  down_proj = register_module("down_proj", Linear(inter, hidden, false));
}

torch::Tensor GatedMLPImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
}

void init_weights(torch::nn::Module& root, at::Generator& gen, double std) {
  torch::NoGradGuard ng;
  // Module by module in pre-order, each module's own parameters in registration order: the same
  // order as root.named_parameters(), so the draws do not depend on how the walk is written.
  for (auto& mod : root.modules(/*include_self=*/true)) {
    const bool drawn = mod->as<LinearImpl>() || mod->as<Conv3dImpl>() || mod->as<EmbeddingImpl>();
    const bool norm = mod->as<LayerNormImpl>() || mod->as<RMSNormImpl>();
    for (auto& p : mod->named_parameters(/*recurse=*/false)) {
      auto& t = p.value();
      if (drawn && p.key() == "weight")
        t.copy_(at::normal(0.0, std, t.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat)));
      else if (norm && p.key() == "weight")
        t.fill_(1.0);
      else
        t.zero_();  // biases, PVM's gate_alpha
    }
  }
}

void init_weights(torch::nn::Module& root, uint64_t seed, double std) {
  auto gen = at::detail::createCPUGenerator(seed);
  init_weights(root, gen, std);
}

}  // namespace pvm
