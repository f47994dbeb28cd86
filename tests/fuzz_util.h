// Deterministic fuzzing helpers shared by the reader fuzz tests (tests/base/test_fuzz_readers.cpp,
// tests/test_fuzz_engine_readers.cpp, tests/studio/test_session_robust.cpp): a portable RNG, byte
// and JSON mutators, and the outcome tally (success or a one-line pvm::Error naming the file; any
// other exception is a test failure).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/base/error.h"

namespace pvm::fuzz {

using nlohmann::json;

// splitmix64: the same sequence on every platform and standard library.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  bool coin(int percent = 50) { return below(100) < uint64_t(percent); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }
};

inline std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 300)) {
    if (c >= 0x20 && c < 0x7f) out += char(c);
    else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    }
  }
  return out;
}

// Tallies outcomes; anything but success or pvm::Error is a test failure (reported a few times).
struct Outcomes {
  const char* what;
  int ok = 0, errors = 0, bad = 0;
  void run(const std::string& input, const std::function<void()>& fn, const std::string& must_mention = "") {
    try {
      fn();
      ++ok;
    } catch (const pvm::Error& e) {
      ++errors;
      std::string msg = e.what();
      if (msg.find('\n') != std::string::npos || (!must_mention.empty() && msg.find(must_mention) == std::string::npos)) {
        if (++bad <= 5) ADD_FAILURE() << what << ": bad error message '" << printable(msg) << "'";
      }
    } catch (const std::exception& e) {
      if (++bad <= 5)
        ADD_FAILURE() << what << ": non-pvm exception '" << printable(e.what()) << "' for input '" << printable(input)
                      << "'";
    } catch (...) {
      if (++bad <= 5) ADD_FAILURE() << what << ": unknown exception for input '" << printable(input) << "'";
    }
  }
  void report() const {
    std::printf("[fuzz] %-28s ok=%d pvm::Error=%d other=%d\n", what, ok, errors, bad);
    EXPECT_EQ(bad, 0) << what;
  }
};

inline std::string mutate_bytes(Rng& r, std::string s, const std::string& alphabet) {
  int ops = 1 + int(r.below(4));
  for (int k = 0; k < ops; ++k) {
    size_t n = s.size();
    switch (r.below(7)) {
      case 0:  // flip a bit
        if (n) s[r.below(n)] ^= char(1u << r.below(8));
        break;
      case 1:  // random byte
        if (n) s[r.below(n)] = char(r.below(256));
        break;
      case 2:  // byte from the interesting alphabet
        if (n) s[r.below(n)] = alphabet[r.below(alphabet.size())];
        break;
      case 3: {  // delete a range
        if (!n) break;
        size_t a = r.below(n), len = 1 + r.below(std::min<size_t>(16, n - a));
        s.erase(a, len);
        break;
      }
      case 4: {  // insert bytes
        size_t a = r.below(n + 1), len = 1 + r.below(8);
        std::string ins;
        for (size_t i = 0; i < len; ++i) ins += r.coin() ? alphabet[r.below(alphabet.size())] : char(r.below(256));
        s.insert(a, ins);
        break;
      }
      case 5:  // truncate
        s.resize(r.below(n + 1));
        break;
      case 6: {  // duplicate a chunk somewhere else
        if (!n) break;
        size_t a = r.below(n), len = 1 + r.below(std::min<size_t>(32, n - a));
        s.insert(r.below(n + 1), s.substr(a, len));
        break;
      }
    }
  }
  return s;
}

inline const std::string kJsonAlphabet = "{}[]\",:0123456789-+.eE \\ntfalsu_FIBOL";

// Random JSON-ish text from safetensors-flavoured tokens.
inline std::string token_soup(Rng& r) {
  static const std::vector<std::string> toks{
      "{", "}", "[", "]", ",", ":", "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "\"F32\"",
      "\"BF16\"", "\"BOOL\"", "\"F8_E4M3\"", "\"x\"", "\"y\"", "0", "1", "4", "8", "-1", "2.5", "1e400",
      "18446744073709551615", "9223372036854775807", "null", "true", "\"\"", "\"\\u0000\"", " "};
  std::string s = r.coin(80) ? "{" : "";
  size_t n = r.below(40);
  for (size_t i = 0; i < n; ++i) s += r.pick(toks);
  if (r.coin(70)) s += "}";
  return s;
}

inline json random_json_value(Rng& r, int depth = 0) {
  switch (r.below(depth > 2 ? 12 : 14)) {
    case 0: return nullptr;
    case 1: return r.coin();
    case 2: return -int64_t(r.below(1000)) - 1;
    case 3: return int64_t(r.below(64));
    case 4: return uint64_t(18446744073709551615ull) - r.below(3);
    case 5: return int64_t(9223372036854775807ll) - int64_t(r.below(3));
    case 6: return std::numeric_limits<int64_t>::min();
    case 7: return r.coin() ? 1e308 : -1e308;
    case 8: return 0.5 * double(r.below(9)) - 1.0;
    case 9: return std::string(r.coin() ? "F32" : "not-a-dtype");
    case 10: return int64_t(1) << r.below(63);
    case 11: return std::string("");
    case 12: {
      json a = json::array();
      size_t n = r.below(5);
      for (size_t i = 0; i < n; ++i) a.push_back(random_json_value(r, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      size_t n = r.below(4);
      for (size_t i = 0; i < n; ++i) o["k" + std::to_string(r.below(5))] = random_json_value(r, depth + 1);
      return o;
    }
  }
}

// Replace, delete or add one value somewhere inside `j` (objects and arrays, any depth).
inline void mutate_json(Rng& r, json& j) {
  json* cur = &j;
  for (int depth = 0; depth < 6; ++depth) {
    bool container = (cur->is_object() || cur->is_array()) && !cur->empty();
    if (!container || r.coin(30)) break;
    size_t i = r.below(cur->size());
    auto it = cur->begin();
    std::advance(it, long(i));
    cur = &*it;
  }
  switch (r.below(4)) {
    case 0:
    case 1: *cur = random_json_value(r); break;
    case 2:
      if (cur->is_object() && !cur->empty()) {
        auto it = cur->begin();
        std::advance(it, long(r.below(cur->size())));
        cur->erase(it);
      } else if (cur->is_array() && !cur->empty()) {
        cur->erase(cur->begin() + long(r.below(cur->size())));
      } else {
        *cur = random_json_value(r);
      }
      break;
    default:
      if (cur->is_object()) (*cur)["extra" + std::to_string(r.below(3))] = random_json_value(r);
      else if (cur->is_array()) cur->push_back(random_json_value(r));
      else *cur = random_json_value(r);
  }
}

}  // namespace pvm::fuzz
