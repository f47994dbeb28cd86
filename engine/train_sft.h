// The SFT objective: next-token cross-entropy on the assistant tokens of chat samples (labels from
// engine/train_data.h), averaged over the global batch's label tokens. One optimizer step takes the
// next global batch of the seeded epoch order (train::SftLoader: this rank's share, cfg.grad_accum
// micro-batches); the loss of each micro-batch is divided by the global label-token count, so the
// sum over micro-batches and ranks is the global-batch mean. Exact resume: the loader's position.
// Optional eval_data: the same loss without gradients, every eval_every steps.
#pragma once
#include <memory>

#include "engine/train.h"

namespace pvm::train {

std::unique_ptr<Objective> make_sft_objective(TrainContext& ctx);

// Sum of token cross-entropies over positions with labels != kIgnoreIndex (labels aligned with
// input_ids: position s is predicted from s-1). Returns a scalar f32 (sum, not mean).
torch::Tensor sft_loss_sum(TrainContext& ctx, const TokenBatch& b);

}  // namespace pvm::train
