// The training runner (SFT and GRPO share it): trainable-set selection, AdamW (engine/optimizer.h)
// with weight decay on matrices only, cosine/constant LR with warm-up, gradient accumulation
// (inside the objective), all-reduce over data-parallel ranks, grad-norm clipping, metrics, atomic
// checkpoints, exact resume, clean stop on SIGINT/SIGTERM. The objectives live in
// engine/train_sft.h and engine/train_grpo.h, the run folder in engine/run_dir.h, the memory
// estimate in engine/memory_estimate.h.
//
// Run directory (rank 0 writes; every file atomically):
//   config.json      resolved TrainConfig
//   manifest.json    base model hash, data hash, seed, git commit, library versions, world size
//   metrics.jsonl    one object per logged step: step (1-based, = optimizer steps done), total_steps,
//                    time (unix s), elapsed_s, loss, lr, grad_norm (pre-clip), tokens_per_s, eta_s,
//                    mem_bytes, gate_alpha {"<layer>": value}, + the objective's metrics (GRPO:
//                    reward_mean, reward_std, format_rate, accuracy_rate, completion_len_mean,
//                    truncated_rate); eval lines: {"step", "eval_loss", "time"}.
//   status.json      {"state": "running"|"finished"|"stopped"|"failed", "step", "total_steps", "pid",
//                    "message"}
//   checkpoints/step-NNNNNN/   weights (adapter.safetensors + adapter_config.json when only PVM
//                    trains, else a full model dir that opens as a model) + optimizer.safetensors
//                    (AdamW state by parameter name, RNG) + trainer_state.json; checkpoints/latest
//                    names the newest; final/ at the end.
#pragma once
#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/base/tokenizer.h"
#include "engine/distributed.h"
#include "engine/image.h"
#include "engine/model.h"
#include "engine/base/train_config.h"
#include "engine/train_data.h"

namespace pvm::train {

struct StepStats {
  double loss = 0;     // global-batch loss (objectives all-reduce it, or report the rank's share)
  int64_t tokens = 0;  // tokens processed by THIS rank in the step (forward tokens incl. prompts)
  nlohmann::json metrics = nlohmann::json::object();  // merged into the metrics line
};

// Built by the trainer, handed to objectives.
struct TrainContext {
  TrainConfig cfg;
  Qwen3VLForConditionalGeneration model{nullptr};
  Tokenizer tokenizer;
  PreprocessorConfig preprocessor;
  torch::Device device{torch::kCPU};
  torch::ScalarType compute_dtype = torch::kFloat;  // model weights' dtype (bf16 path on CUDA)
  int rank = 0, world = 1;
  Distributed* dist = nullptr;  // never null inside run() (world 1: no-op collectives)
  std::string run_dir;
  std::string model_dir;                    // base model folder
  std::atomic<bool>* stop = nullptr;        // set by SIGINT/SIGTERM; objectives may poll it
  std::vector<torch::Tensor> trainable;     // parameters being trained (the model's own tensors)
  std::vector<std::string> trainable_names;
  int64_t total_steps = 0;

  explicit TrainContext(Tokenizer t) : tokenizer(std::move(t)) {}
};

class Objective {
 public:
  virtual ~Objective() = default;
  // Forward + backward for optimizer step `step` (0-based) on this rank's share of the global
  // batch; gradients ACCUMULATE into ctx.trainable (the trainer zeroes, all-reduces (sum) across
  // ranks, clips, steps). The loss must be scaled so that the sum over ranks and micro-batches
  // gives the global-batch mean.
  virtual StepStats compute(int64_t step) = 0;
  virtual nlohmann::json state() const = 0;  // data position etc. for exact resume
  virtual void restore(const nlohmann::json& s) = 0;
  // Optional: mean loss on held-out data (no gradients); NaN when the objective has none.
  virtual double evaluate() { return std::nan(""); }
  // Optional: steps of one epoch (used when cfg.steps == 0); 0 = unknown.
  virtual int64_t steps_per_epoch() const { return 0; }
};

// ---- model helpers for objectives ----

// One batched forward over a TokenBatch with the trainer's settings (gradient checkpointing of
// decoder layers when cfg.grad_checkpointing). Returns the final-normed hidden states [B, S, H]
// (in the compute dtype), differentiable w.r.t. the trainable parameters.
torch::Tensor forward_hidden(TrainContext& ctx, const TokenBatch& b);

// log p(input_ids[b, s] | input_ids[b, <s], images) as [B, S] f32 where mask[b, s] is true (and
// s >= 1), 0 elsewhere. The vocabulary projection runs only at the masked positions (in chunks),
// so long prompts with few targets stay cheap. Differentiable unless called under NoGradGuard.
torch::Tensor token_logprobs(TrainContext& ctx, const TokenBatch& b, const torch::Tensor& mask);

// The same log-probs as a flat [N] f32 tensor, the masked positions in row-major order.
torch::Tensor masked_logprobs(TrainContext& ctx, const TokenBatch& b, const torch::Tensor& mask);

// Run one decoder layer with activation checkpointing: forward without saving activations, the
// layer recomputed with grad during backward. Exposed for tests.
torch::Tensor checkpointed_layer(Qwen3VLTextDecoderLayerImpl& layer, const torch::Tensor& h, const DecoderInputs& in,
                                 KVCache* cache, const ForwardHooks& hooks);

// Trainable set by name: "pvm" = names containing ".pvm_block."; "llm" / "pvm+llm" = the language
// model (model.language_model.* and lm_head) + PVM; "all" = every parameter. Throws when the set
// is empty (e.g. "pvm" on a model without PVM blocks).
std::vector<std::string> select_trainable(Qwen3VLForConditionalGenerationImpl& m, const std::string& set);

// ---- the whole run ----
struct RunOptions {
  std::string resume_dir;  // "" = fresh run
  // Progress callback (called on rank 0 after each step with the metrics line); the CLI draws its
  // progress line from it.
  std::function<void(const nlohmann::json& metrics)> on_step;
  bool install_signal_handlers = true;
  // End the session once the run has taken this many optimizer steps in all (the schedule still
  // spans cfg.steps), as if SIGTERM arrived: checkpoint + "stopped"; a run resumed at or past it
  // takes no step. `pvm train --stop-after N`: run the first N steps of a longer schedule.
  int64_t stop_after = -1;
};

// How a run ended, for the caller's last line (from the run itself, not guessed from files that
// may have moved): "finished" or "stopped" (checkpoint saved), at `step` of `total`, in `run_dir`
// (where the folder is now; `moved_from` is where it started when it was moved while training).
struct RunOutcome {
  std::string state;
  int64_t step = 0, total = 0;
  std::string run_dir, moved_from;
};

// Returns the process exit code: 0 finished, 0 stopped by signal (checkpoint saved), 1 failed.
// Errors before the loop starts (bad config, data, model) throw pvm::Error.
int run(const TrainConfig& cfg, const std::string& resume_dir);
int run(const TrainConfig& cfg, const RunOptions& opt, RunOutcome* outcome = nullptr);

// The stop flag run() installs for SIGINT/SIGTERM (exposed so callers can request a stop).
std::atomic<bool>& stop_flag();

}  // namespace pvm::train
