#include "engine/cpu_gemv.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include "engine/kernels/gemv_avx512.h"
#endif

namespace pvm {

namespace {
std::atomic<int> g_enabled{-1};  // -1: not read from the environment yet
}

bool cpu_gemv_enabled() {
  int v = g_enabled.load();
  if (v < 0) {
    const char* e = std::getenv("PVM_GEMV");
    if (e && std::strcmp(e, "0") == 0) v = 0;
    else if (e && std::strcmp(e, "1") == 0) v = 1;
    else v = cpu_gemv_default() ? 1 : 0;
    g_enabled.store(v);
  }
  return v == 1;
}

bool cpu_gemv_default() {
#if defined(__x86_64__)
  // Measured (experiments/bench/RESULTS_cpu.md, 2B bf16/f32 decode, 2 threads): on an AMD EPYC these
  // loops beat LibTorch's one-row matmul 1.4x; on an Intel Xeon with AMX, MKL / oneDNN read the
  // weights near the bandwidth limit and the loops are 1.4-1.9x slower. On where it was measured faster.
  static const bool amd = __builtin_cpu_is("amd");
  return amd;
#else
  return false;
#endif
}

void set_cpu_gemv_enabled(bool on) { g_enabled.store(on ? 1 : 0); }

#if !defined(__x86_64__)
std::optional<torch::Tensor> cpu_gemv(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  return std::nullopt;  // not an x86-64 build
}
#else
std::optional<torch::Tensor> cpu_gemv(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  if (!cpu_gemv_enabled() || !x.device().is_cpu() || !w.device().is_cpu() || w.dim() != 2 || x.dim() < 1)
    return std::nullopt;
  const auto dt = w.scalar_type();
  if (x.scalar_type() != dt || !w.is_contiguous()) return std::nullopt;
  const int64_t N = w.size(0), K = w.size(1);
  if (x.size(-1) != K || K == 0 || N == 0) return std::nullopt;
  const int64_t M = x.numel() / K;
  if (M < 1 || M > kCpuGemvMaxRows) return std::nullopt;
  if (dt == torch::kBFloat16) {
    if (K % 32 != 0 || !kernels::cpu_has_avx512bf16()) return std::nullopt;
  } else if (dt == torch::kFloat) {
    if (K % 16 != 0 || !kernels::cpu_has_avx512f()) return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (torch::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad())))
    return std::nullopt;  // training: autograd needs torch's op
  if (b.defined() && (b.scalar_type() != dt || b.numel() != N)) return std::nullopt;

  const torch::Tensor xc = x.contiguous();
  auto out_sizes = x.sizes().vec();
  out_sizes.back() = N;
  torch::Tensor y = torch::empty(out_sizes, x.options());
  // Blocks of four rows (the kernel's unit); a task gets at least ~256 KB of weights so small
  // layers are not split into barriers that cost more than they save.
  const int64_t blocks = (N + 3) / 4;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 18) / (4 * K * int64_t(w.element_size())));
  if (dt == torch::kBFloat16) {
    const auto* xp = reinterpret_cast<const uint16_t*>(xc.data_ptr<at::BFloat16>());
    const auto* wp = reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>());
    auto* yp = reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>());
    at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
      kernels::gemv_bf16(xp, wp, yp, M, K, N, b0 * 4, std::min(N, b1 * 4));
    });
  } else {
    const float* xp = xc.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
      kernels::gemv_f32(xp, wp, yp, M, K, N, b0 * 4, std::min(N, b1 * 4));
    });
  }
  if (b.defined()) y.add_(b);
  return y;
}
#endif

}  // namespace pvm
