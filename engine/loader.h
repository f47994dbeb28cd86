// Load HF Qwen3-VL checkpoints (single file or sharded) into our modules, and write them back.
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "engine/base/config.h"
#include "engine/base/error.h"
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
  // Checked between blocks of ~16 MB: when set, loading stops with LoadCancelled.
  const std::atomic<bool>* cancel = nullptr;
};

// Thrown by load_weights / load_model when LoadOptions::cancel was set.
struct LoadCancelled : Error {
  LoadCancelled(const std::string& where, int64_t done, int64_t total)
      : Error(where + ": loading cancelled"), done_bytes(done), total_bytes(total) {}
  int64_t done_bytes, total_bytes;
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

// What a checkpoint folder holds, read from config.json and the safetensors headers only (nothing
// is allocated): the checks load_model makes before allocating (folder, config, model_type, every
// tensor's shape against the config), so a folder that is not a Qwen3-VL checkpoint fails here,
// in one line naming the file.
struct CheckpointInfo {
  ModelConfig config;
  std::vector<std::string> files;  // safetensors files
  int64_t file_bytes = 0;          // their sizes on disk
  int64_t tensor_bytes = 0;        // the tensors' data as stored
};
CheckpointInfo inspect_checkpoint(const std::string& dir, const LoadOptions& opt = {});

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
