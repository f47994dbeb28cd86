// bench_tokenizer: encode the tokenizer test corpus N times and print throughput.
//
//   bench_tokenizer [--tokenizer FILE] [--corpus FILE] [--iters N]
//
// Prints one "RESULT" line per subset (all strings; prose+code only) in the format that
// experiments/tokenizer/bench_side_by_side.sh reads. Single thread.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/base/tokenizer.h"
#include "engine/base/version.h"

namespace {

std::string b64decode(const std::string& s) {
  std::string out;
  int buf = 0, bits = 0;
  for (char c : s) {
    int v = c >= 'A' && c <= 'Z' ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+' ? 62
            : c == '/' ? 63
                       : -1;
    if (v < 0) continue;
    buf = (buf << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xFF));
    }
  }
  return out;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Subset {
  std::string name;
  std::vector<std::string> texts;
  size_t bytes = 0;
};

void run(const pvm::Tokenizer& tok, const Subset& s, int iters) {
  // cold: a fresh copy of the tokenizer would share the cache, so the cold pass is measured by
  // the caller on a freshly loaded tokenizer; here every pass after the first is warm.
  size_t tokens = 0;
  double t0 = now();
  for (int it = 0; it < iters; ++it)
    for (const auto& t : s.texts) tokens += tok.encode(t).size();
  double dt = now() - t0;
  double mb = static_cast<double>(s.bytes) * iters / 1e6;
  std::printf("RESULT impl=pvm subset=%s strings=%zu bytes=%zu iters=%d seconds=%.4f mbps=%.2f tokps=%.0f\n",
              s.name.c_str(), s.texts.size(), s.bytes, iters, dt, mb / dt, static_cast<double>(tokens) / dt);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    pvm::cli::Args a(std::vector<std::string>(argv + 1, argv + argc), {"--tokenizer", "--corpus", "--iters"});
    std::string tok_path = a.get("--tokenizer", pvm::default_tokenizer_path());
    std::string corpus_path = a.get("--corpus", pvm::source_dir() + "/tests/tokenizer/corpus.jsonl");
    int iters = static_cast<int>(a.get_int("--iters", 20));

    Subset all{"all", {}, 0}, prose{"prose+code", {}, 0};
    std::ifstream f(corpus_path);
    if (!f) throw pvm::file_error(corpus_path, "cannot open corpus");
    std::string line;
    while (std::getline(f, line)) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line);
      std::string cat = j["cat"].get<std::string>();
      std::string bytes = b64decode(j["b64"].get<std::string>());
      all.bytes += bytes.size();
      all.texts.push_back(bytes);
      if (cat.rfind("prose", 0) == 0 || cat.rfind("code", 0) == 0) {
        prose.bytes += bytes.size();
        prose.texts.push_back(bytes);
      }
    }

    double t0 = now();
    pvm::Tokenizer tok = pvm::Tokenizer::load(tok_path);
    double t_load = now() - t0;
    std::printf("load %s: %.3f s\n", tok_path.c_str(), t_load);

    // Cold pass (empty word cache).
    size_t tokens = 0;
    t0 = now();
    for (const auto& t : all.texts) tokens += tok.encode(t).size();
    double dt = now() - t0;
    std::printf("RESULT impl=pvm subset=cold strings=%zu bytes=%zu iters=1 seconds=%.4f mbps=%.2f tokps=%.0f\n",
                all.texts.size(), all.bytes, dt, static_cast<double>(all.bytes) / 1e6 / dt,
                static_cast<double>(tokens) / dt);
    run(tok, all, iters);
    run(tok, prose, iters);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: error: %s\n", e.what());
    return 1;
  }
}
