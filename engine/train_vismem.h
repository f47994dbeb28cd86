// VisMem stage 1 (docs/VISMEM.md): the query constructor and both memory formers trained by GRPO
// with the backbone (and the four tokens) frozen, memories invoked at random after separators. One
// optimizer step:
//   - the next prompts_per_step prompts of a seeded order (this rank's slice);
//   - per prompt the base model's own trajectory (VisMem off, greedy) and its reward r_base;
//   - G completions with VisMem in "separators" mode (probability vismem.p after each separator,
//     long-term with vismem.long_fraction, at most vismem.max_invocations), sampled with
//     grpo.temperature / top_p, seeds derived from (seed, step, prompt slot);
//   - advantage A_i = r_i - r_base: the reward measured relative to the base model's trajectory
//     (a group-mean baseline would cancel r_base, so the base trajectory is the baseline);
//   - loss = -sum A_i log p(token) / (policy tokens of the global batch), over the tokens the model
//     chose (the engine's start and end tokens excluded), log-probs from vismem_forward (teacher
//     forcing with every memory re-formed, differentiable through the constructor and formers);
//     truncated completions are masked out. One pass per rollout (ratio 1, no clipping needed).
// Exact resume: the state is the prompt order position; rollouts are re-derived from their seeds.
#pragma once
#include <memory>

#include "engine/train.h"
#include "engine/train_grpo.h"

namespace pvm::train {

std::unique_ptr<Objective> make_vismem_objective(TrainContext& ctx);

// Process-wide reward used in place of grpo.reward while set (tests); empty restores it.
void set_vismem_reward_override(GrpoRewardFn fn);

}  // namespace pvm::train
