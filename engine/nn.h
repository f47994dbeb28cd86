// Minimal layers whose parameters are allocated uninitialised, in the dtype/device chosen by the
// surrounding ParamOptionsGuard. torch::nn::Linear would random-init in f32 first: for an 8B
// checkpoint that is 35 GB and minutes of work thrown away by the load that follows.
#pragma once
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

// y = x W^T (+ b), with the single-row fast path below.
torch::Tensor linear_rows(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b = {});

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias = false);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;  // [out, in], [out] or undefined
};
TORCH_MODULE(Linear);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t num, int64_t dim);
  torch::Tensor forward(const torch::Tensor& ids) { return torch::embedding(weight, ids); }
  torch::Tensor weight;  // [num, dim]
};
TORCH_MODULE(Embedding);

}  // namespace pvm
