#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/base/error.h"
#include "engine/grpo.h"

using namespace pvm::grpo;

namespace {
torch::Tensor vec(std::vector<float> v) { return torch::tensor(v, torch::kFloat); }
double val(const torch::Tensor& t, int64_t i) { return t.reshape(-1)[i].item<double>(); }
}  // namespace

// ---------------------------------------------------------------- advantages

TEST(GrpoAdvantage, HandMadeGroupsUseSampleStd) {
  auto r = vec({1, 0, 0, 0, 0.1f, 1, 0.1f, 1});
  auto a = group_advantages(r, 4, Advantage::Grpo);
  ASSERT_EQ(a.numel(), 8);
  // group 1: mean .25, sample std sqrt((.75^2 + 3*.25^2)/3) = 0.5
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(val(a, i), ((i == 0 ? 1.0 : 0.0) - 0.25) / (0.5 + kStdEps), 1e-6);
  // group 2: mean .55, deviations +-.45, sample std sqrt(4*.45^2/3)
  double sd = std::sqrt(4 * 0.45 * 0.45 / 3);
  for (int i = 4; i < 8; ++i) EXPECT_NEAR(val(a, i), ((i % 2 ? 1.0 : 0.1) - 0.55) / (sd + kStdEps), 1e-5);
  // Advantages sum to zero per group.
  EXPECT_NEAR(a.slice(0, 0, 4).sum().item<double>(), 0, 1e-6);
  EXPECT_NEAR(a.slice(0, 4, 8).sum().item<double>(), 0, 1e-6);
}

TEST(GrpoAdvantage, DrGrpoOnlyCenters) {
  auto a = group_advantages(vec({1, 0, 0, 0, 3, 5}), 2, Advantage::DrGrpo);
  std::vector<double> want{0.5, -0.5, 0, 0, -1, 1};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(val(a, i), want[i], 1e-6);
}

TEST(GrpoAdvantage, AllEqualRewardsGiveZeroNotNaN) {
  for (auto mode : {Advantage::Grpo, Advantage::DrGrpo}) {
    auto a = group_advantages(vec({0.1f, 0.1f, 0.1f, 0.1f, 1, 1, 1, 1}), 4, mode);
    EXPECT_FALSE(a.isnan().any().item<bool>());
    EXPECT_EQ(a.abs().max().item<float>(), 0.f);
    auto single = group_advantages(vec({0.3f, 0.9f}), 1, mode);  // groups of one: nothing to compare
    EXPECT_FALSE(single.isnan().any().item<bool>());
    EXPECT_EQ(single.abs().max().item<float>(), 0.f);
  }
}

TEST(GrpoAdvantage, BadInputThrows) {
  EXPECT_THROW(group_advantages(vec({1, 2, 3}), 2, Advantage::Grpo), pvm::Error);
  EXPECT_THROW(group_advantages(vec({1, 2}), 0, Advantage::Grpo), pvm::Error);
  EXPECT_THROW(group_advantages(torch::zeros({2, 2}), 2, Advantage::Grpo), pvm::Error);
  EXPECT_THROW(parse_advantage("ppo"), pvm::Error);
  EXPECT_THROW(parse_loss_agg("sum"), pvm::Error);
  EXPECT_EQ(parse_loss_agg("seq-mean"), LossAgg::SeqMean);
  EXPECT_EQ(parse_advantage("drgrpo"), Advantage::DrGrpo);
}

// ---------------------------------------------------------------- log-probs

TEST(GrpoLogprob, MatchesLogSoftmaxAndItsGradient) {
  torch::manual_seed(3);
  auto logits = (torch::randn({2, 3, 7}) * 3).requires_grad_(true);
  auto targets = torch::tensor({0, 6, 2, 5, 5, 1}, torch::kLong).view({2, 3});
  auto lp = token_logprobs(logits, targets);
  ASSERT_EQ(lp.sizes(), torch::IntArrayRef({2, 3}));
  auto ref = torch::log_softmax(logits.detach(), 2);
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 3; ++t)
      EXPECT_NEAR(lp[b][t].item<double>(), ref[b][t][targets[b][t].item<int64_t>()].item<double>(), 1e-5);
  // d log p_y / d logits = onehot(y) - softmax
  lp[1][2].backward();
  auto g = logits.grad()[1][2];
  auto p = torch::softmax(logits.detach()[1][2], 0);
  for (int v = 0; v < 7; ++v) EXPECT_NEAR(g[v].item<double>(), (v == 1 ? 1.0 : 0.0) - p[v].item<double>(), 1e-5);
  EXPECT_EQ(logits.grad()[0].abs().sum().item<float>(), 0.f);
  // bf16 logits are promoted to f32
  auto lp16 = token_logprobs(logits.detach().to(torch::kBFloat16), targets);
  EXPECT_EQ(lp16.scalar_type(), torch::kFloat);
  EXPECT_THROW(token_logprobs(logits.detach(), targets.view({6})), pvm::Error);
}

// ---------------------------------------------------------------- surrogate

TEST(GrpoLoss, ClippingStopsTheGradientOnlyWhereTRLDoes) {
  // One token per sequence, old logp 0 so ratio = exp(logp).
  std::vector<float> ratios{1.5f, 1.5f, 0.5f, 0.5f, 1.1f, 0.9f};
  std::vector<float> adv{+1, -1, +1, -1, +1, -1};
  std::vector<float> logs;
  for (float r : ratios) logs.push_back(std::log(r));
  auto logp = vec(logs).view({6, 1}).requires_grad_(true);
  auto old = torch::zeros({6, 1});
  LossOptions o;  // eps 0.2 / 0.2, token-mean
  auto out = policy_loss(logp, old, {}, vec(adv), torch::ones({6, 1}), o);
  out.loss.backward();
  auto g = logp.grad().view(-1);
  // Explicit: loss_i = -min(r A, clip(r) A) / 6; d/dlogp = -r A / 6 when the unclipped branch is active.
  double want_loss = 0;
  for (int i = 0; i < 6; ++i) {
    double r = ratios[i], c = std::min(std::max(r, 0.8), 1.2);
    want_loss += -std::min(r * adv[i], c * adv[i]) / 6;
  }
  EXPECT_NEAR(out.loss.item<double>(), want_loss, 1e-6);
  EXPECT_EQ(val(g, 0), 0.0);                          // r > 1+eps, A > 0: clipped
  EXPECT_NEAR(val(g, 1), -1.5 * -1 / 6.0, 1e-6);      // r > 1+eps, A < 0: not clipped (pessimistic branch)
  EXPECT_NEAR(val(g, 2), -0.5 * 1 / 6.0, 1e-6);       // r < 1-eps, A > 0: not clipped
  EXPECT_EQ(val(g, 3), 0.0);                          // r < 1-eps, A < 0: clipped
  EXPECT_NEAR(val(g, 4), -1.1 / 6.0, 1e-6);           // inside the trust region
  EXPECT_NEAR(val(g, 5), 0.9 / 6.0, 1e-6);
  EXPECT_EQ(out.clipped_high, 1);
  EXPECT_EQ(out.clipped_low, 1);
  EXPECT_NEAR(out.clip_frac(), 2.0 / 6, 1e-12);
  // Asymmetric eps (DAPO-style eps_high 0.28): ratio 1.25 with A > 0 is no longer clipped.
  auto logp2 = vec({std::log(1.25f)}).view({1, 1}).requires_grad_(true);
  o.eps_high = 0.28;
  auto o2 = policy_loss(logp2, torch::zeros({1, 1}), {}, vec({1}), torch::ones({1, 1}), o);
  o2.loss.backward();
  EXPECT_NEAR(logp2.grad().item<double>(), -1.25, 1e-5);
  EXPECT_EQ(o2.clipped, 0);
}

TEST(GrpoLoss, RatioOneGivesPolicyGradient) {
  // With old = logp (first inner epoch) the loss is -A per token and d/dlogp = -A / tokens.
  auto logp = torch::randn({2, 3}).requires_grad_(true);
  auto out = policy_loss(logp, logp.detach(), {}, vec({2, -1}), torch::ones({2, 3}), LossOptions{});
  EXPECT_NEAR(out.loss.item<double>(), (-2 * 3 + 1 * 3) / 6.0, 1e-6);
  out.loss.backward();
  EXPECT_NEAR(logp.grad()[0][1].item<double>(), -2 / 6.0, 1e-6);
  EXPECT_NEAR(logp.grad()[1][2].item<double>(), 1 / 6.0, 1e-6);
  EXPECT_NEAR(out.ratio_sum / out.tokens, 1.0, 1e-6);
}

TEST(GrpoLoss, AggregationModesMatchExplicitFormulas) {
  torch::manual_seed(11);
  const int64_t B = 4, T = 5, L = 8;
  auto logp = (torch::randn({B, T}) * 0.1 - 1).requires_grad_(true);
  auto old = logp.detach() + torch::randn({B, T}) * 0.1;
  auto adv = vec({0.7f, -1.2f, 0.3f, 0.9f});
  std::vector<int64_t> len{5, 2, 3, 4};
  auto mask = completion_mask(len, {false, false, false, true}, T);  // the last one is truncated
  // Explicit per-token loss.
  std::vector<std::vector<double>> ptl(B, std::vector<double>(T));
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      double r = std::exp(logp[b][t].item<double>() - old[b][t].item<double>()), a = val(adv, b);
      ptl[b][t] = -std::min(r * a, std::min(std::max(r, 0.8), 1.2) * a);
    }
  double sum = 0, tokens = 0, seq_sum = 0;
  for (int b = 0; b < 3; ++b) {
    double s = 0;
    for (int t = 0; t < len[b]; ++t) s += ptl[b][t];
    sum += s, tokens += len[b], seq_sum += s / len[b];
  }
  LossOptions o;
  o.max_completion_length = L;
  o.agg = LossAgg::TokenMean;
  EXPECT_NEAR(policy_loss(logp, old, {}, adv, mask, o).loss.item<double>(), sum / tokens, 1e-6);
  o.agg = LossAgg::SeqMean;  // the masked (truncated) sequence still counts in the mean, as TRL
  EXPECT_NEAR(policy_loss(logp, old, {}, adv, mask, o).loss.item<double>(), seq_sum / B, 1e-6);
  o.agg = LossAgg::DrGrpo;
  EXPECT_NEAR(policy_loss(logp, old, {}, adv, mask, o).loss.item<double>(), sum / (B * L), 1e-6);
  o.max_completion_length = 0;
  EXPECT_THROW(policy_loss(logp, old, {}, adv, mask, o), pvm::Error);

  // Parts with global denominators sum to the whole-batch loss (micro-batches / ranks).
  for (auto agg : {LossAgg::TokenMean, LossAgg::SeqMean, LossAgg::DrGrpo}) {
    LossOptions w;
    w.agg = agg, w.max_completion_length = L;
    double whole = policy_loss(logp, old, {}, adv, mask, w).loss.item<double>();
    w.total_tokens = mask.sum().item<double>(), w.total_sequences = B;
    double parts = 0;
    for (int64_t s : {0, 2})
      parts += policy_loss(logp.slice(0, s, s + 2), old.slice(0, s, s + 2), {}, adv.slice(0, s, s + 2),
                           mask.slice(0, s, s + 2), w)
                   .loss.item<double>();
    EXPECT_NEAR(parts, whole, 1e-6) << (int)agg;
  }
}

TEST(GrpoLoss, MaskedTokensGetNoGradient) {
  auto logp = torch::randn({3, 4}).requires_grad_(true);
  auto mask = completion_mask({2, 4, 3}, {false, false, true}, 4);
  EXPECT_EQ(mask.sum().item<float>(), 6.f);
  EXPECT_EQ(mask[0][1].item<float>(), 1.f);
  EXPECT_EQ(mask[0][2].item<float>(), 0.f);
  EXPECT_EQ(mask[2].sum().item<float>(), 0.f);  // truncated: whole row out
  EXPECT_EQ(completion_mask({2}, {true}, 4, /*mask_truncated=*/false).sum().item<float>(), 2.f);
  auto out = policy_loss(logp, logp.detach() - 0.05, {}, vec({1, -1, 2}), mask, LossOptions{});
  out.loss.backward();
  auto g = logp.grad();
  EXPECT_EQ(g[0].slice(0, 2, 4).abs().sum().item<float>(), 0.f);
  EXPECT_EQ(g[2].abs().sum().item<float>(), 0.f);
  EXPECT_GT(g[1].abs().min().item<float>(), 0.f);
  EXPECT_EQ(out.tokens, 6);
  // Everything masked: loss 0, no NaN.
  auto none = policy_loss(logp, logp.detach(), {}, vec({1, 1, 1}), torch::zeros({3, 4}), LossOptions{});
  EXPECT_EQ(none.loss.item<float>(), 0.f);
  EXPECT_THROW(completion_mask({5}, {false}, 4), pvm::Error);
  EXPECT_THROW(policy_loss(logp, logp.detach(), {}, vec({1, 1}), mask, LossOptions{}), pvm::Error);
}

TEST(GrpoLoss, KlK3PenaltyAndItsGradient) {
  auto logp = vec({-1.0f, -2.0f}).view({1, 2}).requires_grad_(true);
  auto ref = vec({-1.0f, -1.5f}).view({1, 2});
  LossOptions o;
  o.beta = 0.5;
  // Zero advantage: only the KL term. k3 = exp(d) - d - 1, d = ref - logp.
  auto out = policy_loss(logp, logp.detach(), ref, vec({0}), torch::ones({1, 2}), o);
  double d = 0.5, k3 = std::exp(d) - d - 1;
  EXPECT_NEAR(out.kl_sum, k3, 1e-6);
  EXPECT_NEAR(out.kl_mean(), k3 / 2, 1e-6);
  EXPECT_NEAR(out.loss.item<double>(), 0.5 * k3 / 2, 1e-6);
  out.loss.backward();
  EXPECT_NEAR(logp.grad()[0][0].item<double>(), 0.0, 1e-7);                        // logp == ref
  EXPECT_NEAR(logp.grad()[0][1].item<double>(), 0.5 * (1 - std::exp(d)) / 2, 1e-6);  // d k3/d logp = 1 - exp(d)
  EXPECT_THROW(policy_loss(logp, logp.detach(), {}, vec({0}), torch::ones({1, 2}), o), pvm::Error);
  o.beta = 0;  // beta 0: the reference is ignored, kl not computed
  auto no = policy_loss(logp, logp.detach(), {}, vec({0}), torch::ones({1, 2}), o);
  EXPECT_EQ(no.kl_sum, 0);
}
