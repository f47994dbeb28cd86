// Memory a training run needs, estimated from the config before any weight is loaded: weights (+ f32
// masters under bf16), gradients, AdamW state and the activations of one micro-batch at max_length.
// `pvm train` refuses a run that does not fit (unless --force); `pvm train estimate` prints it, and
// the studio's Training view shows that output.
#pragma once
#include <cstdint>
#include <string>

#include "engine/base/config.h"
#include "engine/base/train_config.h"
#include "engine/torch_pch.h"

namespace pvm::train {

struct MemoryEstimate {
  int64_t weights = 0, gradients = 0, optimizer = 0, activations = 0, total = 0;
  int64_t params = 0, trainable_params = 0;
  int64_t available = -1;  // bytes the device has free (-1 = unknown)
  std::string device;
  std::string to_string() const;  // a few lines, human-readable
  bool fits() const { return available < 0 || total <= available; }
};

// Estimate for `cfg` on the given model config (after PVM attach), without loading weights.
MemoryEstimate estimate_memory(const TrainConfig& cfg, const ModelConfig& mc);
// Free bytes: CPU MemAvailable from /proc/meminfo; CUDA free memory when reachable, else -1.
int64_t available_memory(const torch::Device& dev);

}  // namespace pvm::train

namespace pvm {

// Memory to open a checkpoint for generation, from its config alone (before loading): the
// parameters in the dtype they are loaded in (exactly what the loaded model holds), the KV cache of
// one answer of `context` tokens, and the working memory of a prefill of that length. The studio's
// Model view shows it against available_memory before a multi-GB folder is loaded.
struct LoadMemoryEstimate {
  int64_t params = 0, weights = 0, kv_cache = 0, working = 0, total = 0;
  int64_t context = 0;
  int64_t available = -1;  // free bytes on the device (-1 unknown)
  bool fits() const { return available < 0 || total <= available; }
  std::string to_string() const;  // one line
};
LoadMemoryEstimate estimate_load_memory(const ModelConfig& mc, torch::ScalarType dtype, const torch::Device& dev,
                                        int64_t context = 4096);

}  // namespace pvm
