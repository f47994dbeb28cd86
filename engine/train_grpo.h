// The GRPO objective (issue 5, item 3). One optimizer step s:
//   rollout r = s / inner_epochs, pass = s % inner_epochs. On pass 0 the rollout is built: the
//   next prompts_per_step prompts of a seeded order (train::Sampler; this rank takes its slice of
//   prompts_per_step / world), G = group_size completions per prompt from the engine's batched
//   generation (one prefill per prompt, temperature/top-p from the config, seed derived from
//   (seed, rollout, prompt slot), stop at <|im_end|> / <|endoftext|>), decoded (special tokens
//   skipped), rewarded, and turned into group advantages (engine/grpo.h).
//   Every pass: teacher forcing of prompt + completion through the trainer's forward (PVM on,
//   activation checkpointing as configured), clipped surrogate against the rollout's log-probs
//   (pass 0: the detached current ones, kept for the later passes), k3 KL to a frozen reference
//   only when beta > 0, loss aggregated with global denominators so the sum over micro-batches
//   (cfg.grad_accum) and ranks is the global-batch loss. Truncated completions (no stop token) are
//   masked out, and so are completions holding a vision token (<|image_pad|>, ...: generation
//   embedded it as text, a teacher-forced forward would read it as an image slot); completions
//   with zero advantage are not forwarded when beta == 0 (their loss and
//   gradient are exactly 0) but still count in every denominator and metric.
// Exact resume: state() holds the prompt order position and, while a rollout still has passes
// left (inner_epochs > 1), the whole rollout (completion ids, rewards, advantages, old and
// reference log-probs as exact f32 bits, gathered from all ranks by global prompt slot).
// The KL reference is a frozen copy of the policy taken before the first update; after a resume
// it is rebuilt from the base model folder and the same PVM initialisation.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/base/rewards.h"
#include "engine/train.h"

namespace pvm::train {

// A reward in place of cfg.grpo.reward (tests, experiments): the record, the decoded completion
// (stop token excluded, special tokens skipped) and the generated ids (stop token included).
using GrpoRewardFn = std::function<rewards::Reward(const GrpoRecord& record, const std::string& text,
                                                   const std::vector<int64_t>& ids)>;

std::unique_ptr<Objective> make_grpo_objective(TrainContext& ctx, GrpoRewardFn reward);
// With cfg.grpo.reward (or the override below): what the runner builds for mode "grpo".
std::unique_ptr<Objective> make_grpo_objective(TrainContext& ctx);

// Process-wide reward used by make_grpo_objective(ctx) while set (lets tests drive train::run);
// an empty function restores cfg.grpo.reward.
void set_grpo_reward_override(GrpoRewardFn fn);

}  // namespace pvm::train
