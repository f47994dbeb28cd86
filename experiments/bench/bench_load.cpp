// Peak memory while loading a checkpoint: (peak RSS during load - RSS before) / checkpoint bytes.
// A loader that copies weights twice scores ~2; ours releases mapped pages tensor by tensor.
//   pvm-bench-load [--model DIR] [--dtype f32] [--max-ratio R]   (no --model: writes a 160 MB f32
//   random checkpoint to a temp folder first). With --max-ratio, exits 1 when the ratio exceeds it.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/base/cli_args.h"
#include "engine/base/safetensors.h"
#include "engine/device.h"
#include "engine/loader.h"

static long status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::string(key).size()));
  return -1;
}

int main(int argc, char** argv) try {
  pvm::cli::Args a(std::vector<std::string>(argv + 1, argv + argc), {"--model", "--dtype", "--max-ratio"});
  std::string dir = a.get("--model");
  bool temp = dir.empty();
  if (temp) {
    dir = (std::filesystem::temp_directory_path() / ("pvm_bench_load_" + std::to_string(getpid()))).string();
    auto c = pvm::preset_config("qwen3-vl-tiny");
    c.text.hidden_size = c.vision.out_hidden_size = 256;  // ~160 MB in f32, mostly the embedding
    auto m = pvm::make_random_model(c, 0, torch::kFloat, torch::kCPU);
    pvm::save_model(m, dir, torch::kFloat);
  }
  auto dtype = pvm::parse_dtype(a.get("--dtype", "f32"), torch::kCPU);
  uint64_t bytes = pvm::Checkpoint::open(dir).total_bytes();
  std::ofstream("/proc/self/clear_refs") << "5";  // reset the peak (VmHWM) to the current RSS
  long before = status_kb("VmRSS:");
  pvm::LoadOptions lo;
  lo.dtype = dtype;
  auto lm = pvm::load_model(dir, lo);
  long peak = status_kb("VmHWM:"), after = status_kb("VmRSS:");
  double ratio = (peak - before) * 1024.0 / bytes;
  std::printf("checkpoint %.1f MB (%s -> %s): RSS before %.1f MB, peak %.1f MB, after %.1f MB; peak growth / size = %.3f\n",
              bytes / 1e6, "file", pvm::dtype_name(dtype).c_str(), before / 1024.0, peak / 1024.0, after / 1024.0, ratio);
  if (temp) std::filesystem::remove_all(dir);
  double max_ratio = a.get_double("--max-ratio", 0);
  if (max_ratio > 0 && ratio > max_ratio) {
    std::printf("FAIL: ratio %.3f > %.3f\n", ratio, max_ratio);
    return 1;
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "pvm-bench-load: error: %s\n", e.what());
  return 1;
}
