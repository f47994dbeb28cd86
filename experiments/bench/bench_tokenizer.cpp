// bench_tokenizer: encode the tokenizer test corpus and print throughput, single thread.
//
//   pvm-bench-tokenizer [--tokenizer FILE] [--corpus FILE] [--seconds S]
//
// Modes, the same work as experiments/tokenizer/bench_hf.py does with HF tokenizers:
//   single  encode() per string, ids of each string kept only long enough to count them;
//   batch   all strings of the subset encoded into one std::vector<std::vector<int32_t>>
//           (what encode_batch returns), single thread.
// Subsets: "all" (every corpus string), "prose+code". "cold" is the first single pass over all
// strings on the freshly loaded tokenizer (empty word cache). Each warm measurement repeats
// passes for at least S seconds (default 2) and reports the median pass.
// Prints one "RESULT" line per measurement; experiments/tokenizer/bench_side_by_side.sh reads them.
#include <algorithm>
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

size_t pass(const pvm::Tokenizer& tok, const Subset& s, bool batch) {
  size_t tokens = 0;
  if (batch) {
    std::vector<std::vector<int32_t>> out;
    out.reserve(s.texts.size());
    for (const auto& t : s.texts) out.push_back(tok.encode(t));
    for (const auto& v : out) tokens += v.size();
  } else {
    for (const auto& t : s.texts) tokens += tok.encode(t).size();
  }
  return tokens;
}

void report(const char* mode, const Subset& s, size_t passes, double sec, size_t tokens) {
  std::printf("RESULT impl=pvm mode=%s subset=%s strings=%zu bytes=%zu tokens=%zu passes=%zu ms=%.3f mbps=%.2f "
              "tokps=%.0f\n",
              mode, s.name.c_str(), s.texts.size(), s.bytes, tokens, passes, sec * 1e3,
              static_cast<double>(s.bytes) / 1e6 / sec, static_cast<double>(tokens) / sec);
  std::fflush(stdout);
}

void run(const pvm::Tokenizer& tok, const Subset& s, bool batch, double seconds) {
  std::vector<double> times;
  size_t tokens = 0;
  double start = now();
  while (times.size() < 5 || now() - start < seconds) {
    double t0 = now();
    tokens = pass(tok, s, batch);
    times.push_back(now() - t0);
  }
  std::sort(times.begin(), times.end());
  report(batch ? "batch" : "single", s, times.size(), times[times.size() / 2], tokens);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    pvm::cli::Args a(std::vector<std::string>(argv + 1, argv + argc), {"--tokenizer", "--corpus", "--seconds"});
    std::string tok_path = a.get("--tokenizer", pvm::default_tokenizer_path());
    std::string corpus_path = a.get("--corpus", pvm::source_dir() + "/tests/tokenizer/corpus.jsonl");
    double seconds = a.get_double("--seconds", 2.0);

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
    t0 = now();
    size_t tokens = pass(tok, all, false);
    report("cold", all, 1, now() - t0, tokens);
    for (const Subset* s : {&all, &prose})
      for (bool batch : {false, true}) run(tok, *s, batch, seconds);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: error: %s\n", e.what());
    return 1;
  }
}
