// pvm init: a random-weight checkpoint in HF layout (for benchmarks and tests of any config size).
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/config.h"
#include "engine/base/error.h"
#include "engine/device.h"
#include "engine/loader.h"

namespace {

int run(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv, {"--preset", "--config", "--out", "--scale", "--layers", "--vision-depth", "--seed", "--dtype",
                          "--shard-mb", "--pvm-layers"},
                   {});
  std::string out = a.require("--out");
  pvm::ModelConfig c;
  if (a.has("--config")) c = pvm::load_config(a.get("--config"));
  else c = pvm::preset_config(a.require("--preset"));
  // --scale f keeps every width (so per-layer costs are real) and keeps a fraction of the layers.
  double scale = a.get_double("--scale", 1.0);
  if (!(scale > 0 && scale <= 1)) throw pvm::Error("--scale must be in (0, 1], got " + a.get("--scale"));
  auto scaled = [&](int64_t n) { return std::max<int64_t>(1, (int64_t)std::llround(n * scale)); };
  c.text.num_hidden_layers = a.get_int("--layers", scaled(c.text.num_hidden_layers), 1, 1024);
  c.vision.depth = a.get_int("--vision-depth", scaled(c.vision.depth), 1, 1024);
  // DeepStack taps must stay inside the (possibly shortened) vision stack: spread them out.
  auto& taps = c.vision.deepstack_visual_indexes;
  for (size_t j = 0; j < taps.size(); ++j)
    if (taps[j] >= c.vision.depth) taps[j] = std::min<int64_t>(c.vision.depth - 1, (int64_t)j);
  std::sort(taps.begin(), taps.end());
  taps.erase(std::unique(taps.begin(), taps.end()), taps.end());
  if (a.has("--pvm-layers")) {
    c.text.pvm_layers.clear();
    for (long long l : pvm::cli::parse_int_list(a.get("--pvm-layers"), "option --pvm-layers", 0, 1023))
      c.text.pvm_layers.push_back(l);
  }
  c.validate("--out " + out);
  auto dtype = pvm::parse_dtype(a.get("--dtype", "bf16"), torch::Device("cpu"));
  uint64_t seed = uint64_t(a.get_int("--seed", 0, 0, INT64_MAX));
  int64_t shard_mb = a.get_int("--shard-mb", 4096, 1, 1 << 30);
  auto counts = pvm::parameter_counts(c);
  std::fprintf(stderr, "pvm init: %lld parameters (%d text layers, %d vision blocks), %s, writing %s\n",
               (long long)counts["total"], (int)c.text.num_hidden_layers, (int)c.vision.depth,
               pvm::dtype_name(dtype).c_str(), out.c_str());
  auto m = pvm::make_random_model(c, seed, dtype, torch::kCPU);
  pvm::save_model(m, out, dtype, (uint64_t)shard_mb << 20);
  std::fprintf(stderr, "pvm init: done\n");
  return 0;
}

}  // namespace

PVM_COMMAND("init", "write a random-weight checkpoint in HF layout",
            "(--preset NAME | --config FILE) --out DIR [--scale F] [--layers N] [--vision-depth N] [--seed S] "
            "[--dtype bf16|f32|f16] [--shard-mb MB] [--pvm-layers 8,16,24]",
            run);
