// Load HF Qwen3-VL checkpoints (single file or sharded) into our modules, and write them back.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/base/config.h"
#include "engine/model.h"

namespace pvm {

class Checkpoint;

struct LoadOptions {
  torch::ScalarType dtype = torch::kFloat;
  torch::Device device = torch::kCPU;
  bool strict = true;  // missing or unexpected keys are an error (listed in the message)
  // Keys allowed to be absent from the checkpoint (e.g. PVM weights that come from an adapter).
  std::function<bool(const std::string&)> optional_key;
  std::function<void(int64_t done_bytes, int64_t total_bytes, const std::string& name)> progress;
};

// HF key -> our key. Official checkpoints need nothing; re-exports with the legacy layout use
// `visual.*` and `model.layers.*` / `model.embed_tokens.*` / `model.norm.*`.
std::string map_legacy_key(const std::string& key);

// Copy every tensor of `ckpt` into the matching parameter of `module` (names from
// named_parameters, which equal HF's). Shapes must match exactly; dtype converts on the copy.
// Pages of the mapped file are released after each tensor so weights are never held twice.
void load_weights(torch::nn::Module& module, const Checkpoint& ckpt, const LoadOptions& opt,
                  const std::string& where);

struct LoadedModel {
  ModelConfig config;
  Qwen3VLForConditionalGeneration model{nullptr};
  std::string dir;
};

// `dir` holds config.json and model.safetensors or model.safetensors.index.json.
LoadedModel load_model(const std::string& dir, const LoadOptions& opt);

// Write config.json + weights (one file, or shards of at most `max_shard_bytes`) in HF layout,
// each file atomically. `dtype` converts on write (e.g. bf16 like the official checkpoints).
void save_model(Qwen3VLForConditionalGeneration& m, const std::string& dir, torch::ScalarType dtype,
                uint64_t max_shard_bytes = 4ull << 30);

// A model with random weights (deterministic by seed) built under the given dtype/device.
Qwen3VLForConditionalGeneration make_random_model(const ModelConfig& c, uint64_t seed, torch::ScalarType dtype,
                                                  torch::Device device);

}  // namespace pvm
