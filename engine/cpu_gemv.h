// Decode's matrix-vector products on the CPU (issue 22): a few input rows against a weight matrix
// read once, by the AVX-512 loops of engine/kernels/gemv_avx512.cpp, split over LibTorch's threads.
#pragma once
#include <torch/torch.h>

#include <optional>

namespace pvm {

// y = x w^T (+ b) for x [..., K] with at most kCpuGemvMaxRows rows, w [N, K] contiguous, on the CPU
// in f32 or bf16, when this CPU has the instructions and no gradient is wanted. Returns nullopt
// where it does not apply (the caller runs torch's linear).
constexpr int64_t kCpuGemvMaxRows = 8;
std::optional<torch::Tensor> cpu_gemv(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b = {});

// On by default where it was measured faster than LibTorch (AMD CPUs: cpu_gemv_default()); the
// environment overrides: PVM_GEMV=0 off, PVM_GEMV=1 on (benchmarks compare both in one run).
bool cpu_gemv_enabled();
bool cpu_gemv_default();
void set_cpu_gemv_enabled(bool on);

}  // namespace pvm
