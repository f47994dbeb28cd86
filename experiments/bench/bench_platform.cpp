// Workarounds written for LibTorch 1.13, re-measured side by side on the current LibTorch:
//   1. one-row linear (a decode step): torch::mv vs torch::nn::functional::linear (addmm, M = 1)
//   2. decoder attention: explicit f32 softmax vs fused scaled_dot_product_attention
// Shapes are Qwen3-VL-2B's (hidden 2048, MLP 6144, 16 query / 8 kv heads of 128). Threads: as
// LibTorch picks (all cores), the same for both sides. Prints a Markdown table with ratios.
//   pvm-bench-platform [--reps N]
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

#include "engine/base/cli_args.h"
#include "engine/nn.h"
#include "engine/text_model.h"

namespace {

double time_ms(const std::function<void()>& f, int reps) {
  f();  // warm-up
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) f();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
    best = std::min(best, ms);
  }
  return best;
}

void row(const std::string& what, const std::string& a_name, double a, const std::string& b_name, double b) {
  std::printf("| %s | %s %.3f ms | %s %.3f ms | %.2f |\n", what.c_str(), a_name.c_str(), a, b_name.c_str(), b, a / b);
}

}  // namespace

int main(int argc, char** argv) try {
  pvm::cli::Args args(std::vector<std::string>(argv + 1, argv + argc), {"--reps"});
  const int reps = args.get_int("--reps", 20, 1, 1 << 20);
  torch::NoGradGuard ng;
  torch::manual_seed(0);
  std::printf("LibTorch %s, %d threads\n\n", TORCH_VERSION, at::get_num_threads());
  std::printf("| case | workaround | LibTorch | workaround time / LibTorch time |\n|---|---|---|---|\n");

  // 1. One-row linear.
  for (auto dt : {torch::kFloat, torch::kBFloat16}) {
    for (auto [in, out] : std::vector<std::pair<int64_t, int64_t>>{{2048, 6144}, {6144, 2048}, {2048, 151936}}) {
      auto w = torch::randn({out, in}).to(dt), x = torch::randn({1, 1, in}).to(dt);
      double mv = time_ms([&] { torch::mv(w, x.reshape({-1})); }, reps);
      double lin = time_ms([&] { torch::nn::functional::linear(x, w); }, reps);
      row(std::string("linear 1x") + std::to_string(in) + " -> " + std::to_string(out) + " " +
              (dt == torch::kFloat ? "f32" : "bf16"), "mv", mv, "linear", lin);
    }
  }
  // 2. Attention, 2B heads.
  for (auto dt : {torch::kFloat, torch::kBFloat16}) {
    const char* dn = dt == torch::kFloat ? "f32" : "bf16";
    for (int64_t T : {512, 4096}) {
      auto q = torch::randn({1, 16, 1, 128}).to(dt), k = torch::randn({1, 8, T, 128}).to(dt), v = torch::randn({1, 8, T, 128}).to(dt);
      pvm::set_attention_path(pvm::AttentionPath::Explicit);
      double ex = time_ms([&] { pvm::gqa_attention(q, k, v, T - 1, {}, {}); }, reps);
      pvm::set_attention_path(pvm::AttentionPath::Fused);
      double fu = time_ms([&] { pvm::gqa_attention(q, k, v, T - 1, {}, {}); }, reps);
      row(std::string("decode attention, context ") + std::to_string(T) + " " + dn, "explicit", ex, "sdpa", fu);
    }
    const int64_t S = 1124;  // a 1024x1024 image (1024 tokens) + 100 text tokens
    auto q = torch::randn({1, 16, S, 128}).to(dt), k = torch::randn({1, 8, S, 128}).to(dt), v = torch::randn({1, 8, S, 128}).to(dt);
    pvm::set_attention_path(pvm::AttentionPath::Explicit);
    double ex = time_ms([&] { pvm::gqa_attention(q, k, v, 0, {}, {}); }, 2);
    pvm::set_attention_path(pvm::AttentionPath::Fused);
    double fu = time_ms([&] { pvm::gqa_attention(q, k, v, 0, {}, {}); }, 2);
    row(std::string("prefill attention, 1124 tokens ") + dn, "explicit", ex, "sdpa", fu);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "pvm-bench-platform: %s\n", e.what());
  return 1;
}
