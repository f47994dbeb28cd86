// Prefill and decode speed of the engine on a random-weight model of any config.
//   pvm-bench-generate (--preset NAME [--scale F] | --model DIR) [--contexts 256,1024,4096]
//                      [--decode 32] [--dtype f32] [--device cpu] [--threads N] [--json FILE]
//                      [--inputs IN.safetensors] [--warmup full|short]
// For each context length C: prefill C text tokens, then decode N tokens; prints tokens/s.
// --inputs (input_ids, pixel_values, image_grid_thw, as experiments/parity/real_shapes.py writes
// them) first times the prefill of that image prompt (vision tower + decoder, one token out).
// --warmup short warms up on a 16-token prompt instead of repeating every measurement (for
// real-size models, where a second 4096-token prefill costs minutes). The JSON records the peak
// resident memory of the process (VmHWM) after each measurement.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/base/proc.h"
#include "engine/device.h"
#include "engine/generate.h"
#include "engine/loader.h"
#include "engine/tensor_io.h"

int main(int argc, char** argv) try {
  pvm::cli::Args a(std::vector<std::string>(argv + 1, argv + argc),
                   {"--preset", "--scale", "--model", "--contexts", "--decode", "--dtype", "--device", "--threads", "--json",
                    "--batch", "--inputs", "--warmup"});
  auto dev = pvm::parse_device(a.get("--device", "cpu"));
  auto dtype = pvm::parse_dtype(a.get("--dtype", "auto"), dev);
  if (a.has("--threads")) torch::set_num_threads(a.get_int("--threads", 1));
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
  const int64_t n_decode = a.get_int("--decode", 32), batch = a.get_int("--batch", 1);
  nlohmann::json out = nlohmann::json::array();
  std::printf("model %s, %s %s, %d threads, batch %lld\n", what.c_str(), dev.str().c_str(), pvm::dtype_name(dtype).c_str(),
              torch::get_num_threads(), (long long)batch);
  std::printf("%8s %14s %14s %16s\n", "context", "prefill ms", "prefill tok/s", "decode tok/s");
  const std::string warmup = a.get("--warmup", "full");
  if (warmup != "full" && warmup != "short") throw pvm::Error("--warmup must be full or short, not '" + warmup + "'");
  auto text_request = [&](int64_t C, int64_t n) {
    pvm::GenerationRequest req;
    // Plain text ids, below the special ids (which sit at the top of the vocabulary, image pad
    // included): the same ids as vs_transformers.py on real vocabularies, folded on small ones.
    const auto& cfg = m->config();
    const int64_t V = std::min<int64_t>(cfg.text.vocab_size, cfg.image_token_id) - 16;
    for (int64_t i = 0; i < C; ++i) req.prompt_ids.push_back((1000 + (i * 7919) % 5000) % V);
    req.max_new_tokens = n;
    req.stop_ids = {-1};  // never stop early
    req.num_sequences = batch;
    return req;
  };
  const double mib = 1024.0 * 1024.0;
  if (warmup == "short") pvm::generate(m, text_request(16, 2));  // allocator, thread pool, kernels
  if (a.has("--inputs")) {
    const std::string path = a.get("--inputs");
    auto in = pvm::load_tensors(path);
    for (const char* k : {"input_ids", "pixel_values", "image_grid_thw"})
      if (!in.count(k)) throw pvm::Error(path + ": no tensor '" + k + "'");
    auto ids = in["input_ids"].to(torch::kLong).contiguous().view({-1});
    auto g = in["image_grid_thw"].to(torch::kLong).contiguous().view({-1, 3});
    pvm::GenerationRequest req;
    req.prompt_ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
    req.pixel_values = in["pixel_values"].to(torch::kFloat).to(dev);
    for (int64_t i = 0; i < g.size(0); ++i) req.grids.push_back({g[i][0].item<int64_t>(), g[i][1].item<int64_t>(), g[i][2].item<int64_t>()});
    req.max_new_tokens = 1;
    req.stop_ids = {-1};
    if (warmup == "full") pvm::generate(m, req);
    auto r = pvm::generate(m, req);
    std::printf("image prompt (%lld tokens): prefill %.1f ms, %.1f tok/s\n", (long long)r.prompt_tokens, r.prefill_ms,
                r.prefill_tokens_per_s());
    out.push_back({{"kind", "image_prefill"}, {"context", r.prompt_tokens}, {"prefill_ms", r.prefill_ms},
                   {"prefill_tokens_per_s", r.prefill_tokens_per_s()}, {"peak_rss_mib", pvm::process_peak_rss_bytes() / mib}});
  }
  for (auto C : contexts) {
    auto req = text_request(C, n_decode);
    if (warmup == "full") pvm::generate(m, req);  // warm-up (allocator, thread pool)
    auto r = pvm::generate(m, req);
    std::printf("%8lld %14.1f %14.1f %16.2f\n", (long long)C, r.prefill_ms, r.prefill_tokens_per_s(), r.decode_tokens_per_s());
    std::fflush(stdout);
    out.push_back({{"kind", "text"}, {"context", C}, {"prefill_ms", r.prefill_ms}, {"prefill_tokens_per_s", r.prefill_tokens_per_s()},
                   {"decode_tokens_per_s", r.decode_tokens_per_s()}, {"batch", batch},
                   {"peak_rss_mib", pvm::process_peak_rss_bytes() / mib}});
  }
  if (a.has("--json")) std::ofstream(a.get("--json")) << out.dump(2) << "\n";
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "pvm-bench-generate: error: %s\n", e.what());
  return 1;
}
