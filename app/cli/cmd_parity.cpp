// pvm parity-run: our engine's side of experiments/parity/real_shapes.py (issue 20 item 3). Reads
// the exact inputs the transformers side used (ids, pixel values, grids), runs one forward over the
// prompt and a greedy continuation, and writes what the script compares.
#include <chrono>
#include <cstdio>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/device.h"
#include "engine/generate.h"
#include "engine/loader.h"
#include "engine/tensor_io.h"

namespace {

int run(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv, {"--model", "--inputs", "--out", "--dtype", "--device", "--new-tokens"}, {});
  auto device = pvm::parse_device(a.get("--device", "cpu"));
  pvm::LoadOptions lo;
  lo.device = device;
  lo.dtype = pvm::parse_dtype(a.get("--dtype", "f32"), device);
  auto t0 = std::chrono::steady_clock::now();
  const int64_t new_tokens = a.get_int("--new-tokens", 64, 1, 1 << 20);  // before the (slow) load
  auto lm = pvm::load_model(a.require("--model"), lo);
  auto in = pvm::load_tensors(a.require("--inputs"));
  auto need = [&](const char* k) {
    auto it = in.find(k);
    if (it == in.end()) throw pvm::Error(a.get("--inputs") + ": no tensor '" + k + "'");
    return it->second;
  };
  auto ids_t = need("input_ids").to(torch::kLong).contiguous().view({-1});
  std::vector<int64_t> ids(ids_t.data_ptr<int64_t>(), ids_t.data_ptr<int64_t>() + ids_t.numel());
  auto pixels = need("pixel_values").to(torch::kFloat);
  auto g = need("image_grid_thw").to(torch::kLong).view({-1, 3});
  std::vector<std::array<int64_t, 3>> grids;
  for (int64_t i = 0; i < g.size(0); ++i)
    grids.push_back({g[i][0].item<int64_t>(), g[i][1].item<int64_t>(), g[i][2].item<int64_t>()});
  auto t1 = std::chrono::steady_clock::now();

  torch::Tensor logits;
  {
    torch::NoGradGuard ng;
    pvm::ForwardInput fi;
    fi.input_ids = torch::tensor(ids, torch::kLong).view({1, -1}).to(device);
    fi.pixel_values = pixels.to(device);
    fi.grids = grids;
    fi.all_logits = true;
    logits = lm.model->forward(fi).logits[0].to(torch::kCPU, torch::kFloat);
  }
  auto t2 = std::chrono::steady_clock::now();
  pvm::GenerationRequest req;
  req.prompt_ids = ids;
  req.pixel_values = pixels.to(device);
  req.grids = grids;
  req.max_new_tokens = new_tokens;
  req.stop_ids = {lm.config.text.vocab_size};  // never stops early: the same count as HF's min_new_tokens
  auto res = pvm::generate(lm.model, req);
  auto t3 = std::chrono::steady_clock::now();
  auto ms = [](auto x, auto y) { return std::chrono::duration<double, std::milli>(y - x).count(); };
  pvm::save_tensors(a.require("--out"), {{"logits", logits}, {"generated_ids", torch::tensor(res.tokens.at(0), torch::kLong)}},
                    {{"load_ms", std::to_string(ms(t0, t1))},
                     {"forward_ms", std::to_string(ms(t1, t2))},
                     {"generate_ms", std::to_string(ms(t2, t3))}});
  std::fprintf(stderr, "pvm parity-run: %zu prompt tokens, load %.0f ms, forward %.0f ms, generate %.0f ms\n", ids.size(),
               ms(t0, t1), ms(t1, t2), ms(t2, t3));
  return 0;
}

}  // namespace

PVM_COMMAND("parity-run", "forward + greedy continuation on saved inputs (experiments/parity/real_shapes.py)",
            "--model DIR --inputs IN.safetensors --out OUT.safetensors [--dtype f32|bf16] [--device cpu|cuda] "
            "[--new-tokens 64]",
            run);
