// Trainer configuration: a JSON file plus `--set key=value` overrides, validated into TrainConfig.
// Every error is one pvm::Error line naming the source (file or --set) and the key, e.g.
// "run.json: lr: must be in (0, 10], got -1" or "config (with --set): grpo.group_size: expected an integer, got \"x\"".
//
// The keys, their types, defaults, ranges and help are one table, train_fields() (train_config.cpp):
// the parser reads through it, config.json of a run is written from it, and the studio's Training
// form is built from it, so a key added there appears in all three and is checked the same way.
// Unknown keys are errors. Cross-key rules: pvm (fresh blocks) and adapter exclude each other; data
// is required; batch_size divisible by grad_accum; bf16 only on CUDA; GRPO defaults trainable to
// "llm" when the config does not set it.
//
// Torch-free (engine/base), so the views can use it.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
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
  std::string reward = "think_answer";    // "think_answer" | "exact" | "choice" | "scene_description"
  std::string system;                     // optional system prompt for rollouts
};

// VisMem training (mode "vismem", docs/VISMEM.md; the rollout settings are grpo.*).
struct VismemTrainConfig {
  std::string adapter;          // the VisMem adapter to start from (pvm init-vismem)
  int64_t stage = 1;            // 1: constructor + formers; 2: the invocation policy (the four token rows)
  double p = 0.5;               // stage 1: chance of an invocation after each separator
  double long_fraction = 0.5;   // stage 1: share of long-term invocations
  int64_t max_invocations = 4;  // per completion
  double type_penalty = 0.5;    // stage 2: weight of max(0, r_swap - r) (the other memory type was better)
  double neg_penalty = 0.5;     // stage 2: weight of max(0, r_skip - r) (no memory was better)
};

struct TrainConfig {
  std::string mode = "sft";  // "sft" | "grpo" | "vismem"
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
  // SFT only: each answer token sees the prompt and just the last N answer tokens (0 = all;
  // engine/text_model.h history_window_mask). The dilution regime of experiments/history_window.
  int64_t history_window = 0;
  // SFT only: the answer's attention on the image keys x (n / P)^K at the token that sees n keys
  // (0 = off; K < 0: the image fades faster than the answer's length makes it; engine/text_model.h
  // visual_restore_bias), as `pvm eval --visual-restore K` generates.
  double visual_restore = 0.0;
  int64_t workers = 2;
  std::string bad_lines = "skip";  // "skip" | "fatal"
  int64_t threads = 0;
  GrpoConfig grpo;
  VismemTrainConfig vismem;

  std::string source;  // where the config came from (file name), for messages

  // Warm-up length in optimizer steps for a run of `total` steps.
  int64_t warmup_for(int64_t total) const;
  // Learning rate at optimizer step `step` (0-based) of `total`: linear warm-up from 0 (HF:
  // lr * (step+1)/warmup is NOT used; HF uses step/warmup, so step 0 has lr 0 -- we do the same),
  // then cosine to lr*min_lr_ratio, or constant.
  double lr_at(int64_t step, int64_t total) const;
  nlohmann::json to_json() const;  // every key, resolved (what config.json in the run dir holds)
};

// ---- the schema ----

enum class FieldType {
  Text,    // a string
  Choice,  // one of `choices`
  Int,     // an integer in [lo, hi]
  Real,    // a finite number in [lo, hi] ((lo, hi] when lo_open)
  Bool,
  Layers,  // a non-empty list of layer indices (required when its section is given)
  Pair,    // two numbers, each in [lo, hi)
};

// Text fields that name a path: relative ones in a config file are relative to that file; inputs
// are made absolute in the resolved config. Forms offer a file browser for them.
enum class PathKind { None, File, Dir, OutDir };

struct TrainField {
  std::string key;  // dotted: "lr", "pvm.layers", "grpo.group_size"
  FieldType type = FieldType::Text;
  std::vector<std::string> choices;  // Choice
  double lo = 0, hi = 0;             // Int, Real, Pair (Int: hi = +inf for no upper bound)
  bool lo_open = false;              // Real
  PathKind path = PathKind::None;
  bool common = false;  // most runs set it: forms show it first, the others under "more"
  std::string help;
  std::function<nlohmann::json(const TrainConfig&)> get;
  std::function<void(TrainConfig&, const nlohmann::json&)> set;  // the value is already checked

  std::string section() const;  // "" (top level), "pvm" or "grpo"
  std::string name() const;     // the key inside its section
  nlohmann::json default_value() const { return get(TrainConfig{}); }
  std::string range_text() const;  // "in (0, 10]", ">= 1", "one of \"sft\", \"grpo\"", "" (free text)
};

// Every key, in the order they are read (sections contiguous).
const std::vector<TrainField>& train_fields();
const TrainField* find_train_field(const std::string& key);  // nullptr when unknown

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
