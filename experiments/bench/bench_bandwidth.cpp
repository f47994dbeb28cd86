// Memory read bandwidth of this machine: the physical limit of decode, which reads every weight once
// per token (issue 22 item 2). Each thread streams its slice of one buffer far larger than the
// last-level cache with 32-byte loads into four independent accumulators (so the loop is bound by
// memory, not by the add chain), the best of R repeats counts.
//   pvm-bench-bandwidth [--threads N] [--mb 2048] [--repeats 7] [--json FILE]
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "engine/base/cli_args.h"
#include "engine/base/error.h"

namespace {

// XOR of every 64-bit word in [p, p + n): XOR keeps the loop free of carries and cannot be
// optimised away because the result is printed.
__attribute__((target("avx2"))) uint64_t read_avx2(const uint8_t* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i*)(p + i)));
    b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i*)(p + i + 32)));
    c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i*)(p + i + 64)));
    d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i*)(p + i + 96)));
  }
  a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256((__m256i*)lanes, a);
  return lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
}

uint64_t read_scalar(const uint8_t* p, size_t n) {
  uint64_t a = 0, b = 0;
  for (size_t i = 0; i + 16 <= n; i += 16) {
    uint64_t x, y;
    std::memcpy(&x, p + i, 8), std::memcpy(&y, p + i + 8, 8);
    a ^= x, b ^= y;
  }
  return a ^ b;
}

}  // namespace

int main(int argc, char** argv) try {
  pvm::cli::Args a(std::vector<std::string>(argv + 1, argv + argc), {"--threads", "--mb", "--repeats", "--json"});
  const int threads = (int)a.get_int("--threads", (int64_t)std::max(1u, std::thread::hardware_concurrency()));
  const int64_t mb = a.get_int("--mb", 2048), repeats = a.get_int("--repeats", 7);
  if (threads < 1 || threads > 1024) throw pvm::Error("--threads must be in 1..1024");
  if (mb < 64 || mb > (1 << 20)) throw pvm::Error("--mb must be in 64..1048576 (MiB)");
  if (repeats < 1 || repeats > 1000) throw pvm::Error("--repeats must be in 1..1000");
  const size_t bytes = (size_t)mb << 20, slice = (bytes / threads) & ~(size_t)127;
  auto* buf = (uint8_t*)std::aligned_alloc(4096, bytes);
  if (!buf) throw pvm::Error("cannot allocate " + std::to_string(mb) + " MiB for the bandwidth buffer");
  const bool avx2 = __builtin_cpu_supports("avx2");
  // First touch from the thread that will read the slice (NUMA placement), with non-zero bytes.
  {
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] { std::memset(buf + t * slice, 0x5a + t, slice); });
    for (auto& t : ts) t.join();
  }
  double best = 0;
  std::vector<double> all;
  uint64_t sink = 0;
  for (int64_t r = 0; r < repeats; ++r) {
    std::vector<uint64_t> out(threads);
    std::vector<std::thread> ts;
    auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] { out[t] = avx2 ? read_avx2(buf + t * slice, slice) : read_scalar(buf + t * slice, slice); });
    for (auto& t : ts) t.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (auto v : out) sink ^= v;
    double gbs = (double)slice * threads / s / 1e9;
    all.push_back(gbs);
    best = std::max(best, gbs);
  }
  std::free(buf);
  std::sort(all.begin(), all.end());
  std::printf("read bandwidth: %.2f GB/s best, %.2f GB/s median (%d threads, %lld MiB, %s loads, checksum %llx)\n", best,
              all[all.size() / 2], threads, (long long)mb, avx2 ? "AVX2" : "scalar", (unsigned long long)sink);
  if (a.has("--json"))
    std::ofstream(a.get("--json")) << nlohmann::json{{"read_gb_per_s", best},
                                                     {"read_gb_per_s_median", all[all.size() / 2]},
                                                     {"threads", threads},
                                                     {"buffer_mib", mb},
                                                     {"loads", avx2 ? "avx2" : "scalar"}}
                                          .dump(1)
                                   << "\n";
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "pvm-bench-bandwidth: error: %s\n", e.what());
  return 1;
}
