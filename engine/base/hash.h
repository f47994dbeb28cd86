// FNV-1a, 64 bit: a hash that is the same on every run and machine (std::hash is not), for
// per-item seeds, data fingerprints and test checksums. Chain calls by passing the last value.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace pvm {

inline constexpr uint64_t kFnv1aOffset = 1469598103934665603ull;
inline constexpr uint64_t kFnv1aPrime = 1099511628211ull;

inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = kFnv1aOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnv1aPrime;
  return h;
}
inline uint64_t fnv1a(const std::string& s, uint64_t h = kFnv1aOffset) { return fnv1a(s.data(), s.size(), h); }

}  // namespace pvm
