#include "engine/grpo.h"

#include "engine/base/error.h"

namespace pvm::grpo {

Advantage parse_advantage(const std::string& s) {
  if (s == "grpo") return Advantage::Grpo;
  if (s == "drgrpo") return Advantage::DrGrpo;
  throw Error("grpo.advantage: unknown value '" + s + "' (expected grpo or drgrpo)");
}

LossAgg parse_loss_agg(const std::string& s) {
  if (s == "token-mean") return LossAgg::TokenMean;
  if (s == "seq-mean") return LossAgg::SeqMean;
  if (s == "drgrpo") return LossAgg::DrGrpo;
  throw Error("grpo.loss_agg: unknown value '" + s + "' (expected token-mean, seq-mean or drgrpo)");
}

torch::Tensor group_advantages(const torch::Tensor& rewards, int64_t group_size, Advantage mode) {
  if (group_size < 1) throw Error("grpo.group_size: must be >= 1, got " + std::to_string(group_size));
  if (rewards.dim() != 1 || rewards.size(0) % group_size != 0)
    throw Error("grpo: rewards must be [N*G] with G = " + std::to_string(group_size) + ", got " +
                std::to_string(rewards.numel()) + " values");
  auto r = rewards.to(torch::kFloat).view({-1, group_size});  // [N, G]
  auto centered = r - r.mean(1, true);
  if (mode == Advantage::DrGrpo) return centered.reshape(-1);
  if (group_size == 1) return torch::zeros_like(rewards, rewards.options().dtype(torch::kFloat));
  auto std = r.std(1, /*unbiased=*/true, /*keepdim=*/true);  // sample std, as TRL
  // centered is exactly 0 in an all-equal group, so the result is 0 (never 0/0).
  return (centered / (std + kStdEps)).reshape(-1);
}

torch::Tensor token_logprobs(const torch::Tensor& logits, const torch::Tensor& targets) {
  if (logits.dim() != 3 || targets.dim() != 2 || logits.size(0) != targets.size(0) || logits.size(1) != targets.size(1))
    throw Error("grpo: token_logprobs expects logits [B, T, V] and targets [B, T]");
  auto x = logits.to(torch::kFloat);
  // gather - logsumexp: no [B, T, V] log-softmax output kept besides what autograd needs.
  return x.gather(2, targets.unsqueeze(2)).squeeze(2) - x.logsumexp(2);
}

torch::Tensor completion_mask(const std::vector<int64_t>& lengths, const std::vector<bool>& truncated, int64_t T,
                              bool mask_truncated) {
  if (lengths.size() != truncated.size()) throw Error("grpo: completion_mask: lengths and truncated differ in size");
  auto m = torch::zeros({(int64_t)lengths.size(), T}, torch::kFloat);
  auto a = m.accessor<float, 2>();
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] < 0 || lengths[i] > T) throw Error("grpo: completion_mask: length beyond T");
    if (mask_truncated && truncated[i]) continue;
    for (int64_t t = 0; t < lengths[i]; ++t) a[i][t] = 1.f;
  }
  return m;
}

LossOutput policy_loss(const torch::Tensor& logp, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                       const torch::Tensor& advantages, const torch::Tensor& mask, const LossOptions& o) {
  if (logp.dim() != 2 || !old_logp.sizes().equals(logp.sizes()) || !mask.sizes().equals(logp.sizes()) ||
      advantages.dim() != 1 || advantages.size(0) != logp.size(0))
    throw Error("grpo: policy_loss expects logp/old_logp/mask [B, T] and advantages [B]");
  if (o.beta > 0 && (!ref_logp.defined() || !ref_logp.sizes().equals(logp.sizes())))
    throw Error("grpo: beta > 0 needs reference log-probs [B, T]");
  if (o.agg == LossAgg::DrGrpo && o.max_completion_length <= 0)
    throw Error("grpo: loss_agg drgrpo needs max_completion_length > 0");
  const int64_t B = logp.size(0);
  auto m = mask.to(logp.device(), torch::kFloat);
  auto A = advantages.to(logp.device(), torch::kFloat).unsqueeze(1);  // [B, 1]
  auto ratio = torch::exp(logp - old_logp.detach());
  auto clipped = torch::clamp(ratio, 1.0 - o.eps_low, 1.0 + o.eps_high);
  auto per_token = -torch::min(ratio * A, clipped * A);  // [B, T]
  torch::Tensor kl;
  if (o.beta > 0) {
    auto d = ref_logp.detach() - logp;
    kl = torch::exp(d) - d - 1;
    per_token = per_token + o.beta * kl;
  }
  auto masked = per_token * m;
  LossOutput out;
  const double tokens = m.sum().item<double>();
  out.tokens = tokens;
  switch (o.agg) {
    case LossAgg::TokenMean: {
      double denom = o.total_tokens > 0 ? o.total_tokens : std::max(tokens, 1.0);
      out.loss = masked.sum() / denom;
      break;
    }
    case LossAgg::SeqMean: {
      double denom = o.total_sequences > 0 ? o.total_sequences : (double)std::max<int64_t>(B, 1);
      out.loss = (masked.sum(1) / m.sum(1).clamp_min(1.0)).sum() / denom;
      break;
    }
    case LossAgg::DrGrpo: {
      double n = o.total_sequences > 0 ? o.total_sequences : (double)std::max<int64_t>(B, 1);
      out.loss = masked.sum() / (n * (double)o.max_completion_length);
      break;
    }
  }
  torch::NoGradGuard ng;
  auto r = ratio.detach();
  auto low = (r < 1.0 - o.eps_low).logical_and(A < 0).to(torch::kFloat) * m;
  auto high = (r > 1.0 + o.eps_high).logical_and(A > 0).to(torch::kFloat) * m;
  out.clipped_low = low.sum().item<double>();
  out.clipped_high = high.sum().item<double>();
  out.clipped = out.clipped_low + out.clipped_high;
  out.ratio_sum = (r * m).sum().item<double>();
  if (kl.defined()) out.kl_sum = (kl.detach() * m).sum().item<double>();
  return out;
}

}  // namespace pvm::grpo
