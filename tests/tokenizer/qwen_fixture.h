// Shared by tests/base/test_tokenizer.cpp and tests/base/test_chat_template.cpp: the real Qwen3
// tokenizer.json (committed in assets/tokenizers/qwen3), loaded once per test binary.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/base/error.h"
#include "engine/base/tokenizer.h"
#include "engine/base/version.h"

namespace pvm_test {

inline bool allow_missing_assets() {
  const char* v = std::getenv("PVM_ALLOW_MISSING_ASSETS");
  return v && std::string(v) == "1";
}

struct QwenTokenizer {
  std::unique_ptr<pvm::Tokenizer> tok;
  std::string error;
  bool missing = false;
};

inline const QwenTokenizer& qwen_tokenizer() {
  static const QwenTokenizer q = [] {
    QwenTokenizer r;
    const std::string path = pvm::default_tokenizer_path();
    if (!std::ifstream(path)) {
      r.missing = true;
      r.error = "Qwen3 tokenizer.json not found at " + path +
                " (it is committed under assets/tokenizers/qwen3: is PVM_HOME a full checkout?), "
                "or set PVM_ALLOW_MISSING_ASSETS=1 to skip these tests";
      return r;
    }
    try {
      r.tok = std::make_unique<pvm::Tokenizer>(pvm::Tokenizer::load(path));
    } catch (const pvm::Error& e) {
      r.error = e.what();
    }
    return r;
  }();
  return q;
}

// Base64 (RFC 4648, with padding) for the corpus files.
inline std::string b64decode(const std::string& s) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int buf = 0, bits = 0;
  for (char c : s) {
    int v = val(c);
    if (v < 0) continue;  // '=' padding
    buf = (buf << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xFF));
    }
  }
  return out;
}

inline std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

inline std::string tokenizer_data_dir() { return pvm::source_dir() + "/tests/tokenizer"; }

// The set-up's Python ($PVM_PYTHON, which CMake passes to every test) with Hugging Face
// `tokenizers`, the reference implementation. `error` says what is wrong when it cannot be used.
struct ReferencePython {
  std::string python;
  std::string error;
};

inline const ReferencePython& reference_python() {
  static const ReferencePython p = [] {
    ReferencePython r;
    const char* v = std::getenv("PVM_PYTHON");
    if (!v || !*v) {
      r.error = "PVM_PYTHON is not set (CMake passes the set-up's virtual environment: configure with "
                "-DPVM_PYTHON=..., see scripts/setup.sh), or set PVM_ALLOW_MISSING_ASSETS=1 to skip";
      return r;
    }
    const std::string cmd = "'" + std::string(v) + "' -c 'import tokenizers' > /dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      r.error = "PVM_PYTHON=" + std::string(v) +
                " cannot import tokenizers (re-run scripts/setup.sh), or set PVM_ALLOW_MISSING_ASSETS=1 to skip";
      return r;
    }
    r.python = v;
    return r;
  }();
  return p;
}

}  // namespace pvm_test

// Use at the top of a test that needs the real tokenizer.
#define PVM_REQUIRE_QWEN_TOKENIZER(var)                                   \
  const auto& var##_holder = ::pvm_test::qwen_tokenizer();                \
  if (!var##_holder.tok) {                                                \
    if (var##_holder.missing && ::pvm_test::allow_missing_assets())       \
      GTEST_SKIP() << var##_holder.error;                                 \
    FAIL() << var##_holder.error;                                         \
  }                                                                       \
  const pvm::Tokenizer& var = *var##_holder.tok

// Use at the top of a test that runs the reference (HF tokenizers) through $PVM_PYTHON: fails when
// it is unset or broken, skips only with PVM_ALLOW_MISSING_ASSETS=1.
#define PVM_REQUIRE_REFERENCE_PYTHON(var)                                       \
  const auto& var##_holder = ::pvm_test::reference_python();                    \
  if (var##_holder.python.empty()) {                                            \
    if (::pvm_test::allow_missing_assets()) GTEST_SKIP() << var##_holder.error; \
    FAIL() << var##_holder.error;                                               \
  }                                                                             \
  const std::string& var = var##_holder.python
