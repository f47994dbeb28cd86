// The decoder's two attention paths compute the same thing: the fused
// scaled_dot_product_attention (no probe) and the explicit f32 softmax (probes read probabilities).
#include <gtest/gtest.h>
#include <cmath>

#include "engine/text_model.h"
#include "engine/base/error.h"

namespace {

struct PathGuard {
  explicit PathGuard(pvm::AttentionPath p) { pvm::set_attention_path(p); }
  ~PathGuard() { pvm::set_attention_path(pvm::AttentionPath::Auto); }
};

torch::Tensor run(bool explicit_path, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                  int64_t offset, const torch::Tensor& key_valid) {
  PathGuard g(explicit_path ? pvm::AttentionPath::Explicit : pvm::AttentionPath::Fused);
  return pvm::gqa_attention(q, k, v, offset, key_valid, {});
}

// One attention call's shape: S queries at positions offset..offset+S-1 over T keys; `padded`: row 1
// of the batch has 3 padding keys on the left.
struct Case { int64_t S, T, offset; bool padded; const char* what; };

}  // namespace

TEST(Attention, FusedPathEqualsExplicitSoftmax) {
  torch::manual_seed(5);
  const int64_t B = 2, Hq = 8, Hkv = 2, D = 16;
  for (auto c : std::vector<Case>{{12, 12, 0, false, "fresh prefill"},
                                  {1, 40, 39, false, "decode step"},
                                  {5, 17, 12, false, "prefill after a cached prefix"},
                                  {9, 9, 0, true, "left-padded batch"},
                                  {1, 9, 8, true, "decode over a padded batch"}}) {
    auto q = torch::randn({B, Hq, c.S, D});
    auto k = torch::randn({B, Hkv, c.T, D});
    auto v = torch::randn({B, Hkv, c.T, D});
    torch::Tensor valid;
    if (c.padded) {  // row 1 has 3 padding keys on the left
      valid = torch::ones({B, c.T}, torch::kBool);
      valid[1].narrow(0, 0, 3).fill_(false);
    }
    auto fused = run(false, q, k, v, c.offset, valid);
    auto expl = run(true, q, k, v, c.offset, valid);
    ASSERT_EQ(fused.sizes(), expl.sizes()) << c.what;
    // Padding queries of a padded prompt see no key at all; only real positions are compared.
    auto rows = c.padded && c.S > 1 ? torch::arange(3, c.S) : torch::arange(0, c.S);
    auto a = fused.index_select(2, rows), b = expl.index_select(2, rows);
    EXPECT_LT((a - b).abs().max().item<float>(), 1e-5f) << c.what;
    // An all-true key_valid goes through the masked branch and must agree with the mask-free one.
    if (c.S > 1 && !c.padded) {
      auto shifted = run(false, q, k, v, c.offset, torch::ones({B, c.T}, torch::kBool));  // fused, masked
      EXPECT_LT((shifted - fused).abs().max().item<float>(), 1e-5f) << c.what << ": all-valid mask";
    }
  }
}

TEST(Attention, FusedPathIsCausal) {
  torch::manual_seed(6);
  auto q = torch::randn({1, 4, 6, 8}), k = torch::randn({1, 2, 6, 8}), v = torch::randn({1, 2, 6, 8});
  PathGuard g(pvm::AttentionPath::Fused);
  auto full = pvm::gqa_attention(q, k, v, 0, {}, {});
  // Changing the last key/value must not change earlier queries' outputs.
  auto k2 = k.clone(), v2 = v.clone();
  k2.select(2, 5).add_(3.0);
  v2.select(2, 5).add_(3.0);
  auto changed = pvm::gqa_attention(q, k2, v2, 0, {}, {});
  EXPECT_LT((full.narrow(2, 0, 5) - changed.narrow(2, 0, 5)).abs().max().item<float>(), 1e-6f);
  EXPECT_GT((full.select(2, 5) - changed.select(2, 5)).abs().max().item<float>(), 1e-3f);
}

// The key bias (the visual-attention intervention, engine/generate.h): on both paths, the output is
// softmax(q k^T / sqrt(D) + bias) v, checked against that formula in double; a bias of log(s) on a
// set of keys multiplies their attention weight by s before the renormalisation.
TEST(Attention, KeyBiasEqualsTheBiasedSoftmaxOnBothPaths) {
  torch::manual_seed(7);
  const int64_t B = 2, Hq = 4, Hkv = 2, D = 8;
  for (auto c : std::vector<Case>{{1, 20, 19, false, "decode step"},
                                  {4, 20, 16, false, "prefill after a cached prefix"},
                                  {1, 20, 19, true, "decode over a padded batch"}}) {
    auto q = torch::randn({B, Hq, c.S, D}), k = torch::randn({B, Hkv, c.T, D}), v = torch::randn({B, Hkv, c.T, D});
    torch::Tensor valid;
    if (c.padded) {
      valid = torch::ones({B, c.T}, torch::kBool);
      valid[1].narrow(0, 0, 3).fill_(false);
    }
    // [1, T + 5]: longer than T (the generator allocates it for the whole context)
    auto bias = torch::zeros({1, c.T + 5});
    bias.narrow(1, 4, 6).fill_(std::log(5.0));
    bias.narrow(1, 12, 2).fill_(std::log(0.25));
    // reference in double
    auto qd = q.to(torch::kDouble), kd = k.to(torch::kDouble).repeat_interleave(Hq / Hkv, 1),
         vd = v.to(torch::kDouble).repeat_interleave(Hq / Hkv, 1);
    auto sc = torch::matmul(qd, kd.transpose(-2, -1)) / std::sqrt((double)D) +
              bias.narrow(1, 0, c.T).to(torch::kDouble).view({1, 1, 1, c.T});
    auto qi = torch::arange(c.offset, c.offset + c.S).view({c.S, 1});
    auto blocked = (torch::arange(c.T).view({1, c.T}) > qi).view({1, 1, c.S, c.T});
    if (c.padded) blocked = blocked | valid.logical_not().view({B, 1, 1, c.T});
    auto ref = torch::matmul(torch::softmax(sc.masked_fill(blocked, -INFINITY), -1), vd);
    for (bool explicit_path : {false, true}) {
      PathGuard g(explicit_path ? pvm::AttentionPath::Explicit : pvm::AttentionPath::Fused);
      auto out = pvm::gqa_attention(q, k, v, c.offset, valid, {}, {}, bias);
      EXPECT_LT((out.to(torch::kDouble) - ref).abs().max().item<double>(), 1e-5) << c.what << (explicit_path ? " explicit" : " fused");
      auto plain = pvm::gqa_attention(q, k, v, c.offset, valid, {});
      EXPECT_GT((out - plain).abs().max().item<float>(), 1e-3f) << c.what << ": the bias changed nothing";
    }
  }
  auto q = torch::randn({1, 2, 1, 8}), k = torch::randn({1, 2, 10, 8});
  EXPECT_THROW(pvm::gqa_attention(q, k, k, 9, {}, {}, {}, torch::zeros({1, 9})), pvm::Error);  // shorter than T
}

// The per-query key mask (the training side of the answer-history window): on both paths the output
// is the softmax over the keys that are causal AND allowed, checked in double; the window mask
// itself hides exactly the answer keys older than the window.
TEST(Attention, KeyMaskEqualsTheMaskedSoftmaxOnBothPaths) {
  torch::manual_seed(8);
  const int64_t B = 2, Hq = 4, Hkv = 2, D = 8;
  for (auto c : std::vector<Case>{{11, 11, 0, false, "fresh forward"}, {4, 15, 11, false, "chunk after a cached prefix"},
                                  {1, 15, 14, false, "decode step"}}) {
    auto q = torch::randn({B, Hq, c.S, D}), k = torch::randn({B, Hkv, c.T, D}), v = torch::randn({B, Hkv, c.T, D});
    auto allowed = torch::rand({B, c.S, c.T}) > 0.4;
    allowed.narrow(2, 0, 1).fill_(true);  // every query keeps one key
    auto qd = q.to(torch::kDouble), kd = k.to(torch::kDouble).repeat_interleave(Hq / Hkv, 1),
         vd = v.to(torch::kDouble).repeat_interleave(Hq / Hkv, 1);
    auto sc = torch::matmul(qd, kd.transpose(-2, -1)) / std::sqrt((double)D);
    auto qi = torch::arange(c.offset, c.offset + c.S).view({c.S, 1});
    auto blocked = (torch::arange(c.T).view({1, c.T}) > qi).view({1, 1, c.S, c.T}) | allowed.logical_not().view({B, 1, c.S, c.T});
    auto ref = torch::matmul(torch::softmax(sc.masked_fill(blocked, -INFINITY), -1), vd);
    for (bool explicit_path : {false, true}) {
      PathGuard g(explicit_path ? pvm::AttentionPath::Explicit : pvm::AttentionPath::Fused);
      auto out = pvm::gqa_attention(q, k, v, c.offset, {}, {}, {}, {}, allowed);
      EXPECT_LT((out.to(torch::kDouble) - ref).abs().max().item<double>(), 1e-5) << c.what << (explicit_path ? " explicit" : " fused");
      auto plain = pvm::gqa_attention(q, k, v, c.offset, {}, {});
      EXPECT_GT((out - plain).abs().max().item<float>(), 1e-3f) << c.what << ": the mask changed nothing";
    }
    EXPECT_THROW(pvm::gqa_attention(q, k, v, c.offset, {}, {}, {}, {}, allowed.narrow(2, 0, c.T - 1)), pvm::Error);
    // a per-query bias [B, S, T] (training with visual_restore_bias), with the mask
    auto bias = torch::randn({B, c.S, c.T});
    auto ref_b = torch::matmul(torch::softmax((sc + bias.to(torch::kDouble).view({B, 1, c.S, c.T})).masked_fill(blocked, -INFINITY), -1), vd);
    for (bool explicit_path : {false, true}) {
      PathGuard g(explicit_path ? pvm::AttentionPath::Explicit : pvm::AttentionPath::Fused);
      auto out = pvm::gqa_attention(q, k, v, c.offset, {}, {}, {}, bias, allowed);
      EXPECT_LT((out.to(torch::kDouble) - ref_b).abs().max().item<double>(), 1e-5) << c.what << ": per-query bias"
                                                                                    << (explicit_path ? " explicit" : " fused");
    }
    EXPECT_THROW(pvm::gqa_attention(q, k, v, c.offset, {}, {}, {}, bias.narrow(1, 0, c.S - 1 + (c.S == 1)).narrow(2, 0, c.T - 1)),
                 pvm::Error);
  }
  // history_window_mask: row 0's answer starts at 3, row 1 has none (start = S)
  const int64_t S = 9, W = 2;
  auto m = pvm::history_window_mask(torch::tensor({3, 9}, torch::kLong), S, W);
  ASSERT_EQ(m.sizes(), (std::vector<int64_t>{2, S, S}));
  for (int64_t i = 0; i < S; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      const bool want = j < 3 || j >= i - W;  // the prompt, then itself and the W answer tokens before it
      EXPECT_EQ(m[0][i][j].item<bool>(), want) << i << "," << j;
      EXPECT_TRUE(m[1][i][j].item<bool>()) << i << "," << j;
    }
  EXPECT_THROW(pvm::history_window_mask(torch::tensor({3}, torch::kLong), S, -1), pvm::Error);
}
