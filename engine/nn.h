// Layers shared by the vision tower, the text decoder and the PVM blocks. Their parameters are
// allocated uninitialised, in the dtype/device chosen by the surrounding ParamOptionsGuard (no f32
// detour: torch::nn::Linear would random-init in f32 first, for an 8B checkpoint 35 GB and minutes
// of work thrown away by the load that follows). Each forward is the single LibTorch call that the
// matching torch.nn layer makes, so numerics equal transformers' (docs/MODEL.md#numerics).
// Random weights come from one function, init_weights.
#pragma once
#include <vector>

#include "engine/torch_pch.h"

namespace pvm {

// Options for parameters created while a guard is alive (thread-local; default f32 CPU).
torch::TensorOptions param_options();
class ParamOptionsGuard {
 public:
  explicit ParamOptionsGuard(torch::TensorOptions o);
  ~ParamOptionsGuard();

 private:
  torch::TensorOptions prev_;
};

// y = x W^T (+ b).
torch::Tensor linear_rows(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b = {});

// A low-rank update added to a Linear's output while it is set (VisMem's memory formers are LoRAs
// on the vision tower and the last decoder layers, engine/vismem.h; they set it around their own
// passes only, so the backbone's forward never sees it).
struct LinearDelta {
  virtual ~LinearDelta() = default;
  virtual torch::Tensor operator()(const torch::Tensor& x) = 0;  // [..., in] -> [..., out]
};

// nn.Linear.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias = false);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;  // [out, in], [out] or undefined
  LinearDelta* delta = nullptr;  // not owned; null = the plain layer
};
TORCH_MODULE(Linear);

// nn.Embedding.
class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t num, int64_t dim);
  torch::Tensor forward(const torch::Tensor& ids) { return torch::embedding(weight, ids); }
  torch::Tensor weight;  // [num, dim]
};
TORCH_MODULE(Embedding);

// nn.Conv3d with kernel = stride and a bias (the vision patch embedding: one output voxel per patch).
class Conv3dImpl : public torch::nn::Module {
 public:
  Conv3dImpl(int64_t in, int64_t out, std::vector<int64_t> kernel);
  torch::Tensor forward(const torch::Tensor& x);  // [N, in, kT, kH, kW] -> [N, out, 1, 1, 1]
  torch::Tensor weight, bias;                     // [out, in, kT, kH, kW], [out]
  std::vector<int64_t> kernel;
};
TORCH_MODULE(Conv3d);

// nn.LayerNorm(dim, eps) with weight and bias (vision tower).
class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;  // [dim]
  double eps;
};
TORCH_MODULE(LayerNorm);

// Qwen3VLTextRMSNorm (text decoder, PVM): normalises in f32, casts back to the input dtype BEFORE
// the weight multiply, as transformers does.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;  // [dim]
  double eps;
};
TORCH_MODULE(RMSNorm);

// Qwen3VLTextMLP (text decoder, PVM): down_proj(silu(gate_proj(x)) * up_proj(x)), no biases.
class GatedMLPImpl : public torch::nn::Module {
 public:
  GatedMLPImpl(int64_t hidden, int64_t inter);
  torch::Tensor forward(const torch::Tensor& x);  // [..., hidden] -> [..., hidden]
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(GatedMLP);

// Random init of every parameter under `root`, the one rule for the backbone, the vision tower
// and the PVM blocks: Linear / Conv3d / Embedding weights N(0, std), biases 0, norm weights 1, any
// other parameter (PVM's gate_alpha) 0. Draws f32 on the CPU from `gen` in named_parameters()
// order, then copies into each parameter (any dtype/device), so the result does not depend on
// where the model lives.
void init_weights(torch::nn::Module& root, at::Generator& gen, double std = 0.02);
// The same with a fresh generator seeded with `seed`.
void init_weights(torch::nn::Module& root, uint64_t seed, double std = 0.02);

}  // namespace pvm
