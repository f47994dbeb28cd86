// The one place where LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (CUDA machines) differ.
// Use only API present in both; wrap anything that is not here.
#pragma once
#include <torch/torch.h>

#ifndef TORCH_VERSION_MAJOR
#include <torch/version.h>
#endif

namespace pvm::compat {

constexpr bool kTorch2 = TORCH_VERSION_MAJOR >= 2;

inline bool cuda_available() { return torch::cuda::is_available(); }

// scaled_dot_product_attention exists from 2.0; on 1.13 we use an explicit softmax path.
// q: [B, Hq, S, D], k/v: [B, Hkv, T, D] already expanded to Hq heads by the caller.
inline torch::Tensor sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const c10::optional<torch::Tensor>& mask, bool causal, double scale) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, mask, 0.0, causal, scale);
#else
  auto s = torch::matmul(q, k.transpose(-2, -1)) * scale;
  if (causal) {
    int64_t S = q.size(-2), T = k.size(-2);
    auto m = torch::ones({S, T}, q.options().dtype(torch::kBool)).tril(T - S);
    s = s.masked_fill(m.logical_not(), -std::numeric_limits<float>::infinity());
  }
  if (mask) s = s + *mask;
  return torch::matmul(torch::softmax(s.to(torch::kFloat), -1).to(q.scalar_type()), v);
#endif
}

}  // namespace pvm::compat
