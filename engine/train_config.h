// Trainer configuration: a JSON file plus `--set key=value` overrides, validated into TrainConfig.
// Every error is one pvm::Error line naming the source (file or --set) and the key, e.g.
// "run.json: lr: must be > 0, got -1" or "--set grpo.group_size=x: grpo.group_size: expected an integer".
//
// Keys (defaults in brackets); unknown keys are errors.
//   mode [sft] | grpo           model [pvm::default_model_dir()]   data (JSONL)   eval_data [""]
//   pvm: {layers: [..], hidden_size [512], variant ["pvm"] | "mlp", source ["embeddings"] | "hidden"}
//        attach fresh PVM blocks (docs/MODEL.md#pvm init) -- or -- adapter: "DIR" (start from a PVM adapter)
//   trainable ["pvm"] | "pvm+llm" | "llm" (language model + PVM; vision + merger frozen) | "all"
//   steps [0 = one epoch]  batch_size [8] (GLOBAL batch per optimizer step, over all ranks)
//   grad_accum [1] (micro-batches per rank per step)  max_length [2048]
//   lr [1e-4]  min_lr_ratio [0]  warmup_ratio [0.1] | warmup_steps (overrides the ratio)
//   schedule ["cosine"] | "constant"  weight_decay [0] (matrices only)  betas [[0.9, 0.999]]
//   visual_lr_scale [1] (lr multiplier for model.visual.*: the vision tower and its mergers)
//   eps [1e-8]  max_grad_norm [1.0] (0 = no clipping)  seed [0]
//   save_every [100] (0 = only final)  log_every [1]  eval_every [0]  keep_checkpoints [2]
//   out (run dir)  device ["cpu"]  dtype ["f32"] | "bf16" (CUDA: bf16 compute, f32 master + state)
//   grad_checkpointing [false]  workers [2]  bad_lines ["skip"] | "fatal"  threads [0 = torch default]
//   grpo: {group_size [8], prompts_per_step [8], temperature [1.0], top_p [1.0], max_new_tokens [256],
//          eps_low [0.2], eps_high [0.2], beta [0.0], advantage ["grpo"] | "drgrpo",
//          loss_agg ["token-mean"] | "seq-mean" | "drgrpo", inner_epochs [1],
//          reward ["think_answer"] | "exact" | "choice", system [""]}
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pvm::train {

struct PvmAttachConfig {
  std::vector<int64_t> layers;  // empty = do not attach
  int64_t hidden_size = 512;
  std::string variant = "pvm";        // "pvm" | "mlp"
  std::string source = "embeddings";  // "embeddings" | "hidden"
  bool enabled() const { return !layers.empty(); }
};

struct GrpoConfig {
  int64_t group_size = 8;
  int64_t prompts_per_step = 8;  // global, over all ranks
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t max_new_tokens = 256;
  double eps_low = 0.2, eps_high = 0.2;
  double beta = 0.0;                      // KL weight; 0 = no reference model kept
  std::string advantage = "grpo";         // "grpo" (r-mean)/std | "drgrpo" (r-mean)
  std::string loss_agg = "token-mean";    // "token-mean" | "seq-mean" | "drgrpo"
  int64_t inner_epochs = 1;
  std::string reward = "think_answer";    // "think_answer" | "exact" | "choice"
  std::string system;                     // optional system prompt for rollouts
};

struct TrainConfig {
  std::string mode = "sft";  // "sft" | "grpo"
  std::string model;         // base checkpoint dir
  PvmAttachConfig pvm;
  std::string adapter;       // start from this PVM adapter dir ("" = none)
  std::string data, eval_data;
  std::string trainable = "pvm";
  int64_t steps = 0;  // 0 = one epoch over `data` (resolved by the trainer)
  int64_t batch_size = 8, grad_accum = 1, max_length = 2048;
  double lr = 1e-4, min_lr_ratio = 0.0, warmup_ratio = 0.1;
  int64_t warmup_steps = -1;  // >= 0 overrides warmup_ratio
  std::string schedule = "cosine";
  double weight_decay = 0.0;
  // Multiplies lr for model.visual.* parameters. Training from scratch, a full-rate merger collapses
  // to one constant vector before the decoder learns to read it (experiments/default_model).
  double visual_lr_scale = 1.0;
  std::array<double, 2> betas{0.9, 0.999};
  double eps = 1e-8, max_grad_norm = 1.0;
  uint64_t seed = 0;
  int64_t save_every = 100, log_every = 1, eval_every = 0, keep_checkpoints = 2;
  std::string out, device = "cpu", dtype = "f32";
  bool grad_checkpointing = false;
  int64_t workers = 2;
  std::string bad_lines = "skip";  // "skip" | "fatal"
  int64_t threads = 0;
  GrpoConfig grpo;

  std::string source;  // where the config came from (file name), for messages

  // Warm-up length in optimizer steps for a run of `total` steps.
  int64_t warmup_for(int64_t total) const;
  // Learning rate at optimizer step `step` (0-based) of `total`: linear warm-up from 0 (HF:
  // lr * (step+1)/warmup is NOT used; HF uses step/warmup, so step 0 has lr 0 -- we do the same),
  // then cosine to lr*min_lr_ratio, or constant.
  double lr_at(int64_t step, int64_t total) const;
  nlohmann::json to_json() const;  // every key, resolved (what config.json in the run dir holds)
};

// Parse + validate a config object. `where` names the source in errors.
TrainConfig parse_train_config(const nlohmann::json& j, const std::string& where);
// Apply one "a.b.c=value" override: value parsed as JSON when it parses, else taken as a string.
// Creates nested objects as needed. Errors name the --set argument.
void apply_override(nlohmann::json& j, const std::string& key_value);
// Read FILE (may be "" = start from defaults), apply overrides in order, parse and validate.
// `mode` ("sft"/"grpo", may be "") is forced when given (the CLI sub-command).
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides,
                              const std::string& mode = "");

}  // namespace pvm::train
