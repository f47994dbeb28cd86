// Raw single-row matrix-vector kernels for decode on x86 CPUs with AVX-512 (engine/cpu_gemv.cpp is
// the LibTorch side: dispatch, threads, dtype checks). No LibTorch here: this file alone is
// compiled with -mavx512*, so no inline function of a shared header can pick up AVX-512 code.
#pragma once
#include <cstdint>

namespace pvm::kernels {

// What this CPU runs (cpuid, at first call).
bool cpu_has_avx512f();
bool cpu_has_avx512bf16();

// y[m, n] = sum_k x[m, k] * w[n, k] for rows n in [n0, n1), m in [0, M). w is row-major [N, K]
// (nn.Linear's layout), x is [M, K], y is [M, N] with row stride ldy; accumulation in f32. The bf16
// variant rounds y to bf16 (nearest even) as torch's bf16 matmul does. K must be a multiple of 32
// (bf16) or 16 (f32): the caller checks. Rows of w are read once for all M inputs.
void gemv_bf16(const uint16_t* x, const uint16_t* w, uint16_t* y, int64_t M, int64_t K, int64_t ldy, int64_t n0,
               int64_t n1);
void gemv_f32(const float* x, const float* w, float* y, int64_t M, int64_t K, int64_t ldy, int64_t n0, int64_t n1);

}  // namespace pvm::kernels
