// Prefill and decode speed of the engine on a random-weight model of any config.
//   pvm-bench-generate (--preset NAME [--scale F] | --model DIR) [--contexts 256,1024,4096]
//                      [--decode 32] [--dtype f32] [--device cpu] [--threads N] [--json FILE]
// For each context length C: prefill C text tokens, then decode N tokens; prints tokens/s.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/device.h"
#include "engine/generate.h"
#include "engine/loader.h"

int main(int argc, char** argv) try {
  pvm::cli::Args a(std::vector<std::string>(argv + 1, argv + argc),
                   {"--preset", "--scale", "--model", "--contexts", "--decode", "--dtype", "--device", "--threads", "--json",
                    "--batch"});
  auto dev = pvm::parse_device(a.get("--device", "cpu"));
  auto dtype = pvm::parse_dtype(a.get("--dtype", "auto"), dev);
  if (a.has("--threads")) torch::set_num_threads(a.get_int("--threads", 1, 1, 1024));
  pvm::Qwen3VLForConditionalGeneration m{nullptr};
  std::string what;
  if (a.has("--model")) {
    pvm::LoadOptions lo;
    lo.dtype = dtype, lo.device = dev;
    m = pvm::load_model(a.get("--model"), lo).model;
    what = a.get("--model");
  } else {
    auto c = pvm::preset_config(a.get("--preset", "qwen3-vl-tiny"));
    double s = a.get_double("--scale", 1.0);
    c.text.num_hidden_layers = std::max<int64_t>(1, (int64_t)(c.text.num_hidden_layers * s + 0.5));
    m = pvm::make_random_model(c, 0, dtype, dev);
    what = a.get("--preset", "qwen3-vl-tiny") + " x" + a.get("--scale", "1");
  }
  std::vector<int64_t> contexts;
  std::stringstream ss(a.get("--contexts", "256,1024,4096"));
  for (std::string t; std::getline(ss, t, ',');) contexts.push_back(std::stoll(t));
  const int64_t n_decode = a.get_int("--decode", 32, 0, 1 << 24), batch = a.get_int("--batch", 1, 1, 1 << 20);
  nlohmann::json out = nlohmann::json::array();
  std::printf("model %s, %s %s, %d threads, batch %lld\n", what.c_str(), dev.str().c_str(), pvm::dtype_name(dtype).c_str(),
              torch::get_num_threads(), (long long)batch);
  std::printf("%8s %14s %14s %16s\n", "context", "prefill ms", "prefill tok/s", "decode tok/s");
  for (auto C : contexts) {
    pvm::GenerationRequest req;
    for (int64_t i = 0; i < C; ++i) req.prompt_ids.push_back(1000 + (i * 7919) % 5000);
    req.max_new_tokens = n_decode;
    req.stop_ids = {-1};  // never stop early
    req.num_sequences = batch;
    pvm::generate(m, req);  // warm-up (allocator, thread pool)
    auto r = pvm::generate(m, req);
    std::printf("%8lld %14.1f %14.1f %16.2f\n", (long long)C, r.prefill_ms, r.prefill_tokens_per_s(), r.decode_tokens_per_s());
    std::fflush(stdout);
    out.push_back({{"context", C}, {"prefill_ms", r.prefill_ms}, {"prefill_tokens_per_s", r.prefill_tokens_per_s()},
                   {"decode_tokens_per_s", r.decode_tokens_per_s()}, {"batch", batch}});
  }
  if (a.has("--json")) std::ofstream(a.get("--json")) << out.dump(2) << "\n";
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "pvm-bench-generate: error: %s\n", e.what());
  return 1;
}
