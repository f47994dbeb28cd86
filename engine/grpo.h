// GRPO math on tensors (no model, no data): group advantages, per-token log-probs, the clipped
// surrogate with an optional KL penalty, loss aggregation and the completion mask. Conventions
// follow TRL's GRPOTrainer (checked against trl/trainer/grpo_trainer.py):
//   - group std is the SAMPLE std (Bessel, n-1: torch's default .std()), advantages
//     (r - mean) / (std + 1e-4); a group of 1 or all-equal rewards gives advantage 0;
//   - ratio = exp(logp - old_logp); per-token loss = -min(ratio*A, clamp(ratio, 1-eps_low, 1+eps_high)*A);
//   - KL (beta > 0) is the k3 estimator exp(ref - logp) - (ref - logp) - 1, added per token * beta;
//   - "token-mean" = TRL "bnpo" (sum over all masked tokens / their count), "seq-mean" = TRL "grpo"
//     (mean over each sequence's masked tokens, then mean over sequences -- all of them, also
//     those fully masked), "drgrpo" = TRL "dr_grpo" (sum / (num sequences * max completion length));
//   - clip fraction counts tokens where the clipped branch is active and stops the gradient:
//     (ratio < 1-eps_low and A < 0) or (ratio > 1+eps_high and A > 0).
#pragma once
#include <string>
#include <vector>

#include "engine/torch_pch.h"

namespace pvm::grpo {

enum class Advantage { Grpo, DrGrpo };
enum class LossAgg { TokenMean, SeqMean, DrGrpo };
// "grpo" | "drgrpo"; "token-mean" | "seq-mean" | "drgrpo". Others throw pvm::Error naming the key.
Advantage parse_advantage(const std::string& s);
LossAgg parse_loss_agg(const std::string& s);

constexpr double kStdEps = 1e-4;  // TRL's epsilon added to the group std

// rewards [N*G] (the G completions of a prompt contiguous) -> advantages [N*G] f32.
torch::Tensor group_advantages(const torch::Tensor& rewards, int64_t group_size, Advantage mode);

// logits [B, T, V] (any float dtype; promoted to f32), targets [B, T] int64 ->
// log softmax(logits)[target] as [B, T] f32 (differentiable through logits).
torch::Tensor token_logprobs(const torch::Tensor& logits, const torch::Tensor& targets);

// [B, T] f32 mask: 1 for the first lengths[i] tokens (the stop token included), 0 after; a whole
// row 0 when truncated[i] (no stop token within the budget) and mask_truncated.
torch::Tensor completion_mask(const std::vector<int64_t>& lengths, const std::vector<bool>& truncated, int64_t T,
                              bool mask_truncated = true);

struct LossOptions {
  double eps_low = 0.2, eps_high = 0.2;
  double beta = 0.0;  // KL weight; ref_logp is ignored (may be undefined) when 0
  LossAgg agg = LossAgg::TokenMean;
  int64_t max_completion_length = 0;  // drgrpo's constant (max_new_tokens); required for drgrpo
  // Denominators over the whole optimizer step (all micro-batches and ranks), so that the losses of
  // the parts SUM to the loss of the global batch. <= 0: this call's own count.
  double total_tokens = 0;     // token-mean: masked tokens of the global batch
  double total_sequences = 0;  // seq-mean / drgrpo: sequences of the global batch
};

struct LossOutput {
  torch::Tensor loss;  // scalar f32, differentiable through logp
  // Sums over the masked tokens of this call (add them up across parts, then divide by tokens).
  double tokens = 0, clipped = 0, clipped_low = 0, clipped_high = 0, kl_sum = 0, ratio_sum = 0;
  double clip_frac() const { return tokens > 0 ? clipped / tokens : 0; }
  double kl_mean() const { return tokens > 0 ? kl_sum / tokens : 0; }
};

// logp (with grad), old_logp and ref_logp (detached): [B, T] f32; advantages [B]; mask [B, T] (0/1).
LossOutput policy_loss(const torch::Tensor& logp, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                       const torch::Tensor& advantages, const torch::Tensor& mask, const LossOptions& o);

}  // namespace pvm::grpo
