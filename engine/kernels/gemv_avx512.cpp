// Decode reads every weight once per token: a matrix-vector product is bound by memory bandwidth,
// not arithmetic. oneDNN's bf16 and f32 matmul with one input row read the weights at about 18 GB/s
// on the 2-core EPYC VM where the read limit is 31.6 GB/s; these loops stream each weight row once,
// four rows at a time against the same x chunk, at 25 GB/s (experiments/bench/RESULTS_cpu.md).
#include "engine/kernels/gemv_avx512.h"

#include <immintrin.h>

// GCC 12 flags the reduction intrinsics of its own header (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstring>

namespace pvm::kernels {

bool cpu_has_avx512f() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

bool cpu_has_avx512bf16() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  return yes;
}

namespace {

inline uint16_t to_bf16(float f) {  // round to nearest even, NaN kept a NaN
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

}  // namespace

void gemv_bf16(const uint16_t* x, const uint16_t* w, uint16_t* y, int64_t M, int64_t K, int64_t ldy, int64_t n0,
               int64_t n1) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) {
    const uint16_t* w0 = w + n * K;
    const uint16_t* w1 = w0 + K;
    const uint16_t* w2 = w1 + K;
    const uint16_t* w3 = w2 + K;
    for (int64_t m = 0; m < M; ++m) {  // the four rows stay in L1 across the inputs
      const uint16_t* xm = x + m * K;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t k = 0; k < K; k += 32) {
        const __m512bh xv = (__m512bh)_mm512_loadu_si512(xm + k);
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(w0 + k), xv);
        a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(w1 + k), xv);
        a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(w2 + k), xv);
        a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(w3 + k), xv);
      }
      uint16_t* ym = y + m * ldy + n;
      ym[0] = to_bf16(_mm512_reduce_add_ps(a0));
      ym[1] = to_bf16(_mm512_reduce_add_ps(a1));
      ym[2] = to_bf16(_mm512_reduce_add_ps(a2));
      ym[3] = to_bf16(_mm512_reduce_add_ps(a3));
    }
  }
  for (; n < n1; ++n) {
    const uint16_t* wn = w + n * K;
    for (int64_t m = 0; m < M; ++m) {
      const uint16_t* xm = x + m * K;
      __m512 a = _mm512_setzero_ps();
      for (int64_t k = 0; k < K; k += 32)
        a = _mm512_dpbf16_ps(a, (__m512bh)_mm512_loadu_si512(wn + k), (__m512bh)_mm512_loadu_si512(xm + k));
      y[m * ldy + n] = to_bf16(_mm512_reduce_add_ps(a));
    }
  }
}

void gemv_f32(const float* x, const float* w, float* y, int64_t M, int64_t K, int64_t ldy, int64_t n0, int64_t n1) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) {
    const float* w0 = w + n * K;
    const float* w1 = w0 + K;
    const float* w2 = w1 + K;
    const float* w3 = w2 + K;
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x + m * K;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t k = 0; k < K; k += 16) {
        const __m512 xv = _mm512_loadu_ps(xm + k);
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + k), xv, a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + k), xv, a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + k), xv, a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + k), xv, a3);
      }
      float* ym = y + m * ldy + n;
      ym[0] = _mm512_reduce_add_ps(a0);
      ym[1] = _mm512_reduce_add_ps(a1);
      ym[2] = _mm512_reduce_add_ps(a2);
      ym[3] = _mm512_reduce_add_ps(a3);
    }
  }
  for (; n < n1; ++n) {
    const float* wn = w + n * K;
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x + m * K;
      __m512 a = _mm512_setzero_ps();
      for (int64_t k = 0; k < K; k += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(wn + k), _mm512_loadu_ps(xm + k), a);
      y[m * ldy + n] = _mm512_reduce_add_ps(a);
    }
  }
}

}  // namespace pvm::kernels
