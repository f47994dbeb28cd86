// Qwen3-VL vision tower tests on a tiny config. References here are written independently of
// engine/vision.cpp: plain loops and double-precision matmuls, following docs/MODEL.md#vision-tower.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/base/error.h"
#include "engine/vision.h"

namespace {

using torch::indexing::Slice;

pvm::VisionConfig tiny_config() {
  pvm::VisionConfig c;
  c.depth = 3;
  c.hidden_size = 32;  // Dv
  c.intermediate_size = 64;
  c.num_heads = 4;  // hd = 8
  c.in_channels = 3;
  c.patch_size = 4;
  c.temporal_patch_size = 2;
  c.spatial_merge_size = 2;
  c.out_hidden_size = 48;
  c.num_position_embeddings = 64;  // 8x8 table
  c.deepstack_visual_indexes = {0, 2};
  c.hidden_act = "gelu_pytorch_tanh";
  return c;
}

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Random weights that make every parameter matter: O(1) activations (fan-in scaled weights),
// non-zero biases, LayerNorm weights != 1. Deterministic in `seed`.
pvm::Qwen3VLVisionModel make_model(uint64_t seed) {
  pvm::Qwen3VLVisionModel m(tiny_config());
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard ng;
  for (auto& kv : m->named_parameters()) {
    const auto& name = kv.key();
    auto& p = kv.value();
    auto r = torch::empty(p.sizes(), torch::kFloat).normal_(0.0, 1.0, gen);
    if (name.find("norm") != std::string::npos && ends_with(name, ".weight")) {
      p.copy_(1.0 + 0.2 * r);
    } else if (ends_with(name, ".bias")) {
      p.copy_(0.2 * r);
    } else if (name == "pos_embed.weight") {
      p.copy_(r);
    } else {
      double fan_in = static_cast<double>(p.numel() / p.size(0));
      double gain = name.find("attn.qkv") != std::string::npos ? 2.0 : 1.0;  // peaky attention
      p.copy_(r * (gain / std::sqrt(fan_in)));
    }
  }
  return m;
}

torch::Tensor grid_tensor(const std::vector<std::array<int64_t, 3>>& g) {
  std::vector<int64_t> flat;
  for (auto& r : g) flat.insert(flat.end(), r.begin(), r.end());
  return torch::tensor(flat, torch::kLong).view({-1, 3});
}

int64_t num_patches(const std::vector<std::array<int64_t, 3>>& g) {
  int64_t L = 0;
  for (auto& r : g) L += r[0] * r[1] * r[2];
  return L;
}

torch::Tensor random_pixels(int64_t L, uint64_t seed) {
  auto c = tiny_config();
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::empty({L, c.in_channels * c.temporal_patch_size * c.patch_size * c.patch_size},
                      torch::kFloat)
      .uniform_(-1.0, 1.0, gen);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// (row, col) at patch resolution of token r inside one frame of an (h, w) item, from the
// merge-window order definition (t, block_row, block_col, intra_row, intra_col), m = 2.
std::pair<int64_t, int64_t> token_row_col(int64_t r, int64_t w) {
  const int64_t win = r / 4, br = win / (w / 2), bc = win % (w / 2), ir = (r % 4) / 2, ic = r % 2;
  return {2 * br + ir, 2 * bc + ic};
}

// Straightforward bilinear align_corners=True resample of the G×G table at patch (i, j) of an
// h×w grid, in double.
torch::Tensor bilinear_at(const torch::Tensor& table /*[G*G, D] double*/, int64_t G, int64_t h,
                          int64_t w, int64_t i, int64_t j) {
  double y = h > 1 ? static_cast<double>(i) * (G - 1) / (h - 1) : 0.0;
  double x = w > 1 ? static_cast<double>(j) * (G - 1) / (w - 1) : 0.0;
  int64_t y0 = static_cast<int64_t>(std::floor(y)), x0 = static_cast<int64_t>(std::floor(x));
  int64_t y1 = std::min(y0 + 1, G - 1), x1 = std::min(x0 + 1, G - 1);
  double ay = y - y0, ax = x - x0;
  return (1 - ay) * (1 - ax) * table[y0 * G + x0] + (1 - ay) * ax * table[y0 * G + x1] +
         ay * (1 - ax) * table[y1 * G + x0] + ay * ax * table[y1 * G + x1];
}

// Positional table resampled for every token, merge-window order, in double: [L, D].
torch::Tensor naive_pos_embed(const torch::Tensor& table, int64_t G,
                              const std::vector<std::array<int64_t, 3>>& grid) {
  std::vector<torch::Tensor> rows;
  for (auto& g : grid)
    for (int64_t t = 0; t < g[0]; ++t)
      for (int64_t r = 0; r < g[1] * g[2]; ++r) {
        auto [i, j] = token_row_col(r, g[2]);
        rows.push_back(bilinear_at(table, G, g[1], g[2], i, j));
      }
  return torch::stack(rows);
}

// Independent RoPE angle for token (row, col), dim d < hd/2: first quarter rows, second quarter cols.
double rope_angle(int64_t row, int64_t col, int64_t d, int64_t hd) {
  const int64_t q = hd / 4;
  const int64_t k = d < q ? d : d - q;
  const double inv = std::pow(10000.0, -2.0 * k / (hd / 2.0));
  return (d < q ? row : col) * inv;
}

torch::Tensor layer_norm_ref(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  auto mu = x.mean(-1, true);
  auto var = (x - mu).pow(2).mean(-1, true);
  return (x - mu) / (var + 1e-6).sqrt() * w + b;
}
torch::Tensor gelu_tanh_ref(const torch::Tensor& x) {
  return 0.5 * x * (1 + torch::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x.pow(3))));
}
torch::Tensor gelu_erf_ref(const torch::Tensor& x) { return 0.5 * x * (1 + torch::erf(x / std::sqrt(2.0))); }

struct RefOut {
  torch::Tensor merged;
  std::vector<torch::Tensor> deepstack;
};

// The whole tower, written from docs/MODEL.md with loops and matmuls in double.
RefOut naive_forward(pvm::Qwen3VLVisionModel& model, const torch::Tensor& pixels,
                     const std::vector<std::array<int64_t, 3>>& grid) {
  const auto c = tiny_config();
  const int64_t Dv = c.hidden_size, nh = c.num_heads, hd = Dv / nh, G = 8;
  std::map<std::string, torch::Tensor> P;
  for (auto& kv : model->named_parameters()) P[kv.key()] = kv.value().detach().to(torch::kDouble);
  auto lin = [&](const torch::Tensor& x, const std::string& n) {
    return torch::matmul(x, P[n + ".weight"].t()) + P[n + ".bias"];
  };
  const int64_t L = pixels.size(0);

  // Patch embed as a matmul over the flattened (c, tt, py, px) patch.
  auto x = torch::matmul(pixels.to(torch::kDouble), P["patch_embed.proj.weight"].reshape({Dv, -1}).t()) +
           P["patch_embed.proj.bias"];
  x = x + naive_pos_embed(P["pos_embed.weight"], G, grid);

  // Per-token angles (row, col) and segment boundaries.
  auto theta = torch::zeros({L, hd / 2}, torch::kDouble);
  std::vector<std::pair<int64_t, int64_t>> segs;  // [begin, end)
  int64_t off = 0;
  for (auto& g : grid)
    for (int64_t t = 0; t < g[0]; ++t) {
      for (int64_t r = 0; r < g[1] * g[2]; ++r) {
        auto [row, col] = token_row_col(r, g[2]);
        for (int64_t d = 0; d < hd / 2; ++d) theta[off + r][d] = rope_angle(row, col, d, hd);
      }
      segs.push_back({off, off + g[1] * g[2]});
      off += g[1] * g[2];
    }
  auto rope = [&](const torch::Tensor& v /*[L, hd]*/) {
    auto out = v.clone();
    auto a = v.index({Slice(), Slice(0, hd / 2)}), b = v.index({Slice(), Slice(hd / 2, hd)});
    out.index_put_({Slice(), Slice(0, hd / 2)}, a * theta.cos() - b * theta.sin());
    out.index_put_({Slice(), Slice(hd / 2, hd)}, b * theta.cos() + a * theta.sin());
    return out;
  };

  RefOut ref;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  for (int64_t blk = 0; blk < c.depth; ++blk) {
    const std::string pre = "blocks." + std::to_string(blk) + ".";
    auto h = layer_norm_ref(x, P[pre + "norm1.weight"], P[pre + "norm1.bias"]);
    auto qkv = lin(h, pre + "attn.qkv");  // [L, 3Dv]
    auto attn = torch::zeros({L, Dv}, torch::kDouble);
    for (int64_t head = 0; head < nh; ++head) {
      auto q = rope(qkv.index({Slice(), Slice(head * hd, (head + 1) * hd)}));
      auto k = rope(qkv.index({Slice(), Slice(Dv + head * hd, Dv + (head + 1) * hd)}));
      auto v = qkv.index({Slice(), Slice(2 * Dv + head * hd, 2 * Dv + (head + 1) * hd)});
      for (auto [b0, b1] : segs) {
        auto s = torch::matmul(q.index({Slice(b0, b1)}), k.index({Slice(b0, b1)}).t()) * scale;
        auto e = (s - std::get<0>(s.max(-1, true))).exp();
        auto pr = e / e.sum(-1, true);
        attn.index_put_({Slice(b0, b1), Slice(head * hd, (head + 1) * hd)},
                        torch::matmul(pr, v.index({Slice(b0, b1)})));
      }
    }
    x = x + lin(attn, pre + "attn.proj");
    auto h2 = layer_norm_ref(x, P[pre + "norm2.weight"], P[pre + "norm2.bias"]);
    x = x + lin(gelu_tanh_ref(lin(h2, pre + "mlp.linear_fc1")), pre + "mlp.linear_fc2");
    for (size_t j = 0; j < c.deepstack_visual_indexes.size(); ++j)
      if (c.deepstack_visual_indexes[j] == blk) {
        const std::string d = "deepstack_merger_list." + std::to_string(j) + ".";
        auto y = layer_norm_ref(x.reshape({-1, 4 * Dv}), P[d + "norm.weight"], P[d + "norm.bias"]);
        ref.deepstack.push_back(lin(gelu_erf_ref(lin(y, d + "linear_fc1")), d + "linear_fc2"));
      }
  }
  auto y = layer_norm_ref(x, P["merger.norm.weight"], P["merger.norm.bias"]).reshape({-1, 4 * Dv});
  ref.merged = lin(gelu_erf_ref(lin(y, "merger.linear_fc1")), "merger.linear_fc2");
  return ref;
}

}  // namespace

TEST(Vision, ParameterNamesAndShapesMatchCheckpointTable) {
  const auto c = tiny_config();
  pvm::Qwen3VLVisionModel m(c);
  const int64_t Dv = 32, I = 64, Dm = 4 * Dv, H = 48;
  // docs/MODEL.md#weight-names, in HF registration order.
  std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"patch_embed.proj.weight", {Dv, 3, 2, 4, 4}}, {"patch_embed.proj.bias", {Dv}},
      {"pos_embed.weight", {64, Dv}}};
  for (int i = 0; i < 3; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    std::vector<std::pair<std::string, std::vector<int64_t>>> blk = {
        {b + "norm1.weight", {Dv}},          {b + "norm1.bias", {Dv}},
        {b + "norm2.weight", {Dv}},          {b + "norm2.bias", {Dv}},
        {b + "attn.qkv.weight", {3 * Dv, Dv}}, {b + "attn.qkv.bias", {3 * Dv}},
        {b + "attn.proj.weight", {Dv, Dv}},  {b + "attn.proj.bias", {Dv}},
        {b + "mlp.linear_fc1.weight", {I, Dv}}, {b + "mlp.linear_fc1.bias", {I}},
        {b + "mlp.linear_fc2.weight", {Dv, I}}, {b + "mlp.linear_fc2.bias", {Dv}}};
    want.insert(want.end(), blk.begin(), blk.end());
  }
  auto merger = [&](const std::string& p, int64_t norm_dim) {
    want.push_back({p + "norm.weight", {norm_dim}});
    want.push_back({p + "norm.bias", {norm_dim}});
    want.push_back({p + "linear_fc1.weight", {Dm, Dm}});
    want.push_back({p + "linear_fc1.bias", {Dm}});
    want.push_back({p + "linear_fc2.weight", {H, Dm}});
    want.push_back({p + "linear_fc2.bias", {H}});
  };
  merger("merger.", Dv);  // pre-shuffle norm over Dv
  merger("deepstack_merger_list.0.", Dm);  // post-shuffle norm over 4·Dv
  merger("deepstack_merger_list.1.", Dm);

  auto got = m->named_parameters();
  ASSERT_EQ(got.size(), want.size());
  size_t i = 0;
  for (auto& kv : got) {
    EXPECT_EQ(kv.key(), want[i].first) << "at " << i;
    EXPECT_EQ(kv.value().sizes().vec(), want[i].second) << kv.key();
    ++i;
  }
  // inv_freq is non-persistent in HF: nothing else may appear in a state dict.
  EXPECT_EQ(m->named_buffers().size(), 0u);
}

TEST(Vision, InitWeightsIsDeterministicAndFollowsRules) {
  pvm::Qwen3VLVisionModel a(tiny_config()), b(tiny_config()), c(tiny_config());
  pvm::init_weights(*a, 7, 0.02);
  pvm::init_weights(*b, 7, 0.02);
  pvm::init_weights(*c, 8, 0.02);
  auto pb = b->named_parameters(), pc = c->named_parameters();
  for (auto& kv : a->named_parameters()) {
    const auto& n = kv.key();
    const auto& p = kv.value();
    EXPECT_TRUE(torch::equal(p, pb[n])) << n;
    if (n.find("norm") != std::string::npos && ends_with(n, ".weight")) {
      EXPECT_TRUE(torch::equal(p, torch::ones_like(p))) << n;
    } else if (ends_with(n, ".bias")) {
      EXPECT_TRUE(torch::equal(p, torch::zeros_like(p))) << n;
    } else {
      EXPECT_FALSE(torch::equal(p, pc[n])) << n << " should depend on the seed";
      if (p.numel() >= 2048) {
        EXPECT_NEAR(p.std().item<double>(), 0.02, 0.002) << n;
      }
      EXPECT_NEAR(p.mean().item<double>(), 0.0, 0.01) << n;
    }
  }
}

TEST(Vision, PosEmbedInterpolationMatchesBilinearReference) {
  auto m = make_model(1);
  auto table = m->pos_embed->weight.detach().to(torch::kDouble);
  // Down-sampling, non-square, up-sampling beyond the 8x8 table, and a 2-frame item.
  std::vector<std::array<int64_t, 3>> grid = {{1, 4, 6}, {1, 12, 10}, {2, 6, 2}, {1, 2, 2}};
  auto got = m->fast_pos_embed_interpolate(grid_tensor(grid));
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{num_patches(grid), 32}));
  auto want = naive_pos_embed(table, 8, grid);
  EXPECT_LT(max_abs_diff(got, want), 1e-5);
  // Same grid size as the table: no resampling, just the table in merge-window order — exactly.
  auto same = m->fast_pos_embed_interpolate(grid_tensor({{1, 8, 8}}));
  std::vector<int64_t> order;
  for (int64_t r = 0; r < 64; ++r) {
    auto [i, j] = token_row_col(r, 8);
    order.push_back(i * 8 + j);
  }
  auto expect = m->pos_embed->weight.detach().index_select(0, torch::tensor(order, torch::kLong));
  EXPECT_TRUE(torch::equal(same, expect));
  // And not the row-major table (the reorder really happened).
  EXPECT_FALSE(torch::equal(same, m->pos_embed->weight.detach()));
}

TEST(Vision, RopeAnglesFollowRowAndColumnAndRotationIsNormPreserving) {
  auto m = make_model(2);
  const int64_t hd = 8, nh = 4;
  // inv_freq = 10000^(-2k/(hd/2)), k < hd/4.
  auto inv = m->inv_freq();
  ASSERT_EQ(inv.numel(), hd / 4);
  EXPECT_EQ(inv.scalar_type(), torch::kFloat);
  for (int64_t k = 0; k < hd / 4; ++k)
    EXPECT_NEAR(inv[k].item<double>(), std::pow(10000.0, -2.0 * k / (hd / 2.0)), 1e-7);

  std::vector<std::array<int64_t, 3>> grid = {{1, 6, 4}, {2, 4, 10}};
  const int64_t L = num_patches(grid);
  auto ang = m->rot_pos_emb(grid_tensor(grid));  // [L, hd/2]
  ASSERT_EQ(ang.sizes(), (std::vector<int64_t>{L, hd / 2}));
  EXPECT_EQ(ang.scalar_type(), torch::kFloat);
  auto want = torch::zeros({L, hd / 2}, torch::kDouble);
  int64_t off = 0;
  for (auto& g : grid)
    for (int64_t t = 0; t < g[0]; ++t)
      for (int64_t r = 0; r < g[1] * g[2]; ++r, ++off) {
        auto [row, col] = token_row_col(r, g[2]);
        for (int64_t d = 0; d < hd / 2; ++d) want[off][d] = rope_angle(row, col, d, hd);
      }
  EXPECT_LT(max_abs_diff(ang, want), 1e-5);

  // Rotation: norm per (token, head) preserved, and pairs (d, d + hd/2) rotate by the angle.
  auto gen = at::detail::createCPUGenerator(3);
  auto q = torch::empty({L, nh, hd}, torch::kFloat).normal_(0, 1, gen);
  auto k = torch::empty({L, nh, hd}, torch::kFloat).normal_(0, 1, gen);
  auto emb = torch::cat({ang, ang}, -1);
  auto [qr, kr] = pvm::apply_rotary_pos_emb_vision(q, k, emb.cos(), emb.sin());
  EXPECT_LT(max_abs_diff(qr.norm(2, -1), q.norm(2, -1)), 1e-5);
  EXPECT_LT(max_abs_diff(kr.norm(2, -1), k.norm(2, -1)), 1e-5);
  auto qd = q.to(torch::kDouble);
  auto a = qd.index({Slice(), Slice(), Slice(0, hd / 2)}), b = qd.index({Slice(), Slice(), Slice(hd / 2, hd)});
  auto cs = want.cos().unsqueeze(1), sn = want.sin().unsqueeze(1);
  auto expect = torch::cat({a * cs - b * sn, b * cs + a * sn}, -1);
  EXPECT_LT(max_abs_diff(qr, expect), 1e-5);
  // bf16 inputs come back as bf16 (rotation done in f32 inside).
  auto [qb, kb] = pvm::apply_rotary_pos_emb_vision(q.to(torch::kBFloat16), k.to(torch::kBFloat16),
                                                   emb.cos(), emb.sin());
  EXPECT_EQ(qb.scalar_type(), torch::kBFloat16);
  EXPECT_LT(max_abs_diff(qb, expect), 0.05);
}

TEST(Vision, SegmentLengthsFollowGrid) {
  auto seg = pvm::Qwen3VLVisionModelImpl::segment_lengths(grid_tensor({{1, 4, 6}, {3, 2, 4}}));
  EXPECT_EQ(seg, (std::vector<int64_t>{24, 8, 8, 8}));
}

TEST(Vision, AttentionIsBlockDiagonalPerImageAndFrame) {
  torch::NoGradGuard ng;
  auto m = make_model(4);
  std::vector<std::array<int64_t, 3>> ga = {{1, 4, 6}}, gb = {{1, 6, 4}}, gc = {{2, 4, 4}};
  auto pa = random_pixels(24, 10), pb = random_pixels(24, 11), pc = random_pixels(32, 12);
  auto joint = m->forward(torch::cat({pa, pb, pc}), grid_tensor({ga[0], gb[0], gc[0]}));
  auto oa = m->forward(pa, grid_tensor(ga));
  auto ob = m->forward(pb, grid_tensor(gb));
  auto oc = m->forward(pc, grid_tensor(gc));
  auto sep = torch::cat({oa.merged, ob.merged, oc.merged});
  ASSERT_EQ(joint.merged.sizes(), sep.sizes());
  // Not bit-exact: the CPU GEMM blocks differently for different row counts (~1e-6 here, values ~2).
  EXPECT_LT(max_abs_diff(joint.merged, sep), 1e-5);
  ASSERT_EQ(joint.deepstack.size(), 2u);
  for (size_t j = 0; j < 2; ++j)
    EXPECT_LT(max_abs_diff(joint.deepstack[j],
                           torch::cat({oa.deepstack[j], ob.deepstack[j], oc.deepstack[j]})),
              1e-5);
  // The two frames of a t=2 item are separate segments too: pos-embed and RoPE repeat per frame, so
  // frame 0 run alone as a t=1 item must give the same rows.
  auto frame0 = m->forward(pc.slice(0, 0, 16), grid_tensor({{1, 4, 4}}));
  EXPECT_LT(max_abs_diff(oc.merged.slice(0, 0, 4), frame0.merged), 1e-5);
  // Sanity: the images really differ, so a leak across segments would show.
  EXPECT_GT(max_abs_diff(oa.merged, ob.merged), 1e-2);
}

TEST(Vision, MergerGroupsConsecutiveWindowRows) {
  torch::NoGradGuard ng;
  auto m = make_model(5);
  auto gen = at::detail::createCPUGenerator(6);
  auto x = torch::empty({16, 32}, torch::kFloat).normal_(0, 1, gen);  // 4 windows of 4 patches
  std::vector<std::shared_ptr<pvm::Qwen3VLVisionPatchMergerImpl>> mergers = {
      m->merger.ptr(), m->deepstack_merger_list->ptr<pvm::Qwen3VLVisionPatchMergerImpl>(0)};
  for (auto& mg : mergers) {
    auto base = mg->forward(x);
    ASSERT_EQ(base.sizes(), (std::vector<int64_t>{4, 48}));
    // Swap two patches inside window 1: only output row 1 changes.
    auto xs = x.clone();
    xs[4].copy_(x[5]);
    xs[5].copy_(x[4]);
    auto o = mg->forward(xs);
    EXPECT_GT(max_abs_diff(o[1], base[1]), 1e-3);
    for (int r : {0, 2, 3}) EXPECT_LT(max_abs_diff(o[r], base[r]), 1e-6) << r;
    // Permute whole windows: output rows permute the same way.
    std::vector<int64_t> perm = {2, 0, 3, 1};
    std::vector<int64_t> rows;
    for (auto w : perm)
      for (int64_t i = 0; i < 4; ++i) rows.push_back(4 * w + i);
    auto op = mg->forward(x.index_select(0, torch::tensor(rows, torch::kLong)));
    EXPECT_LT(max_abs_diff(op, base.index_select(0, torch::tensor(perm, torch::kLong))), 1e-6);
  }
  // Layout of the final merger: fc2(gelu(fc1([LN(x0) | LN(x1) | LN(x2) | LN(x3)]))).
  auto& mg = m->merger;
  auto ln = [&](const torch::Tensor& t) {
    return layer_norm_ref(t.to(torch::kDouble), mg->norm->weight.to(torch::kDouble),
                          mg->norm->bias.to(torch::kDouble));
  };
  auto cat = torch::cat({ln(x[0]), ln(x[1]), ln(x[2]), ln(x[3])});
  auto h = gelu_erf_ref(torch::matmul(mg->linear_fc1->weight.to(torch::kDouble), cat) +
                        mg->linear_fc1->bias.to(torch::kDouble));
  auto want = torch::matmul(mg->linear_fc2->weight.to(torch::kDouble), h) + mg->linear_fc2->bias.to(torch::kDouble);
  EXPECT_LT(max_abs_diff(mg->forward(x)[0], want), 1e-5);
}

TEST(Vision, FullForwardMatchesNaiveReference) {
  torch::NoGradGuard ng;
  auto m = make_model(7);
  std::vector<std::array<int64_t, 3>> grid = {{1, 4, 6}, {2, 4, 4}};
  auto px = random_pixels(num_patches(grid), 13);
  auto out = m->forward(px, grid_tensor(grid));
  auto ref = naive_forward(m, px, grid);
  ASSERT_EQ(out.merged.sizes(), (std::vector<int64_t>{14, 48}));
  EXPECT_EQ(out.merged.scalar_type(), torch::kFloat);
  // The reference is not trivially small, so a 1e-5 bound is meaningful.
  EXPECT_GT(ref.merged.abs().max().item<double>(), 0.5);
  EXPECT_LT(max_abs_diff(out.merged, ref.merged), 1e-5);
  ASSERT_EQ(out.deepstack.size(), 2u);
  ASSERT_EQ(ref.deepstack.size(), 2u);
  for (size_t j = 0; j < 2; ++j) {
    ASSERT_EQ(out.deepstack[j].sizes(), (std::vector<int64_t>{14, 48}));
    EXPECT_LT(max_abs_diff(out.deepstack[j], ref.deepstack[j]), 1e-5) << j;
  }
  // Taps are different layers: outputs differ.
  EXPECT_GT(max_abs_diff(out.deepstack[0], out.deepstack[1]), 1e-2);
}

TEST(Vision, Bf16ForwardIsCloseToF32) {
  torch::NoGradGuard ng;
  auto m32 = make_model(8);
  auto m16 = make_model(8);
  m16->to(torch::kBFloat16);
  EXPECT_EQ(m16->pos_embed->weight.scalar_type(), torch::kBFloat16);
  std::vector<std::array<int64_t, 3>> grid = {{1, 4, 6}, {1, 2, 2}};
  auto px = random_pixels(num_patches(grid), 14);  // f32 input, cast inside
  auto a = m32->forward(px, grid_tensor(grid));
  auto b = m16->forward(px, grid_tensor(grid));
  EXPECT_EQ(b.merged.scalar_type(), torch::kBFloat16);
  const double scale = a.merged.abs().max().item<double>();
  EXPECT_LT(max_abs_diff(a.merged, b.merged), 0.05 * scale);
  ASSERT_EQ(b.deepstack.size(), 2u);
  for (size_t j = 0; j < 2; ++j)
    EXPECT_LT(max_abs_diff(a.deepstack[j], b.deepstack[j]),
              0.05 * a.deepstack[j].abs().max().item<double>());
}

TEST(Vision, BadInputsAreClearErrors) {
  auto m = make_model(9);
  EXPECT_THROW(m->forward(random_pixels(15, 1), grid_tensor({{1, 3, 5}})), pvm::Error);  // odd h
  EXPECT_THROW(m->forward(random_pixels(10, 1), grid_tensor({{1, 4, 4}})), pvm::Error);  // L mismatch
  EXPECT_THROW(m->forward(random_pixels(16, 1), torch::tensor({1, 4, 4})), pvm::Error);  // not [N,3]
  auto c = tiny_config();
  c.deepstack_visual_indexes = {3};
  EXPECT_THROW(pvm::Qwen3VLVisionModel{c}, pvm::Error);
  c = tiny_config();
  c.num_position_embeddings = 60;
  EXPECT_THROW(pvm::Qwen3VLVisionModel{c}, pvm::Error);
}

TEST(Vision, CudaMatchesCpu) {
  if (!pvm::cuda_available()) GTEST_SKIP() << "no CUDA";
  pvm::cuda_exact_f32();  // what load_model does on CUDA; PyTorch's default would run the conv in TF32
  torch::NoGradGuard ng;
  auto cpu = make_model(10);
  std::vector<std::array<int64_t, 3>> grid = {{1, 4, 6}, {2, 4, 4}};
  auto px = random_pixels(num_patches(grid), 15);
  auto a = cpu->forward(px, grid_tensor(grid));
  for (auto dt : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
    auto g = make_model(10);
    g->to(torch::Device(torch::kCUDA), dt);
    auto b = g->forward(px.to(torch::kCUDA), grid_tensor(grid));  // grid stays on CPU
    EXPECT_TRUE(b.merged.is_cuda());
    EXPECT_EQ(b.merged.scalar_type(), dt);
    const double tol = dt == torch::kFloat ? 1e-4 : 0.05 * a.merged.abs().max().item<double>();
    EXPECT_LT(max_abs_diff(a.merged, b.merged.cpu()), tol) << c10::toString(dt);
    for (size_t j = 0; j < 2; ++j)
      EXPECT_LT(max_abs_diff(a.deepstack[j], b.deepstack[j].cpu()),
                dt == torch::kFloat ? 1e-4 : 0.05 * a.deepstack[j].abs().max().item<double>());
  }
}
