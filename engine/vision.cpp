// Qwen3-VL vision tower. Op order, dtypes and devices follow HF modeling_qwen3_vl.py as written down
// in docs/MODEL.md#vision-tower and #numerics, so that a bf16 run can match HF bit for bit.
#include "engine/vision.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/base/error.h"
#include "engine/rope.h"

namespace pvm {

namespace {

Error config_error(const std::string& what) { return Error("vision_config: " + what); }

// HF: nn.LayerNorm(dim, eps=1e-6), elementwise affine with bias.
LayerNorm layer_norm(int64_t dim) { return LayerNorm(dim, 1e-6); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// patch_embed

Qwen3VLVisionPatchEmbedImpl::Qwen3VLVisionPatchEmbedImpl(const VisionConfig& c)
    : in_channels_(c.in_channels),
      temporal_patch_size_(c.temporal_patch_size),
      patch_size_(c.patch_size),
      embed_dim_(c.hidden_size) {
  const std::vector<int64_t> k{c.temporal_patch_size, c.patch_size, c.patch_size};
  proj = register_module("proj", Conv3d(c.in_channels, c.hidden_size, k));
}

torch::Tensor Qwen3VLVisionPatchEmbedImpl::forward(const torch::Tensor& x) {
  // [L, C·T·P·P] -> [L, C, T, P, P] -> cast to the weight dtype (the only place pixel values are
  // cast) -> conv3d (one output voxel per patch, docs/MODEL.md#numerics: same kernel as HF, not a GEMM) -> [L, Dv].
  auto v = x.view({-1, in_channels_, temporal_patch_size_, patch_size_, patch_size_})
               .to(proj->weight.device(), proj->weight.scalar_type());
  return proj->forward(v).view({-1, embed_dim_});
}

// ---------------------------------------------------------------------------------------------
// blocks.{i}.attn

Qwen3VLVisionAttentionImpl::Qwen3VLVisionAttentionImpl(const VisionConfig& c)
    : num_heads_(c.num_heads),
      head_dim_(c.head_dim()),
      scale_(std::pow(static_cast<double>(c.head_dim()), -0.5)) {
  qkv = register_module("qkv", Linear(c.hidden_size, 3 * c.hidden_size, /*bias=*/true));
  proj = register_module("proj", Linear(c.hidden_size, c.hidden_size, /*bias=*/true));
}

torch::Tensor Qwen3VLVisionAttentionImpl::forward(const torch::Tensor& x,
                                                  const std::vector<int64_t>& seg_lens,
                                                  const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t L = x.size(0);
  // qkv rows: [0,Dv) = Q, [Dv,2Dv) = K, [2Dv,3Dv) = V, heads contiguous inside each.
  // [L, 3Dv] -> [L, 3, nh, hd] -> [3, L, nh, hd]
  auto parts = qkv->forward(x).reshape({L, 3, num_heads_, head_dim_}).permute({1, 0, 2, 3}).unbind(0);
  auto [q, k] = apply_rotary_pos_emb_vision(parts[0], parts[1], cos, sin);
  // [L, nh, hd] -> [1, nh, L, hd] (views, same strides as HF)
  q = q.transpose(0, 1).unsqueeze(0);
  k = k.transpose(0, 1).unsqueeze(0);
  auto v = parts[2].transpose(0, 1).unsqueeze(0);

  // Block-diagonal attention: each segment (one frame-pair of one item) attends only to itself,
  // run as a separate unmasked, non-causal SDPA call like HF's sdpa path.
  auto qs = q.split_with_sizes(seg_lens, 2);
  auto ks = k.split_with_sizes(seg_lens, 2);
  auto vs = v.split_with_sizes(seg_lens, 2);
  std::vector<torch::Tensor> outs;
  outs.reserve(seg_lens.size());
  for (size_t s = 0; s < seg_lens.size(); ++s) {
    auto o = at::scaled_dot_product_attention(qs[s], ks[s], vs[s], /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/false, scale_);
    outs.push_back(o.transpose(1, 2).contiguous());  // [1, len, nh, hd]
  }
  auto o = torch::cat(outs, 1).reshape({L, -1});  // [L, Dv]
  return proj->forward(o);
}

std::pair<torch::Tensor, torch::Tensor> apply_rotary_pos_emb_vision(const torch::Tensor& q,
                                                                     const torch::Tensor& k,
                                                                     const torch::Tensor& cos,
                                                                     const torch::Tensor& sin) {
  // Rotation in fp32 even for bf16 activations (docs/MODEL.md#numerics), cos/sin broadcast over heads: [L, 1, hd].
  auto qf = q.to(torch::kFloat), kf = k.to(torch::kFloat);
  auto c = cos.unsqueeze(-2).to(torch::kFloat), s = sin.unsqueeze(-2).to(torch::kFloat);
  auto qe = qf * c + rotate_half(qf) * s;
  auto ke = kf * c + rotate_half(kf) * s;
  return {qe.to(q.scalar_type()), ke.to(k.scalar_type())};
}

// ---------------------------------------------------------------------------------------------
// blocks.{i}.mlp

Qwen3VLVisionMLPImpl::Qwen3VLVisionMLPImpl(const VisionConfig& c) {
  if (c.hidden_act == "gelu_pytorch_tanh" || c.hidden_act == "gelu_tanh") {
    gelu_approximate_ = "tanh";
  } else if (c.hidden_act == "gelu") {
    gelu_approximate_ = "none";
  } else {
    throw config_error("hidden_act '" + c.hidden_act +
                       "' not supported (expected gelu_pytorch_tanh or gelu)");
  }
  linear_fc1 = register_module("linear_fc1", Linear(c.hidden_size, c.intermediate_size, /*bias=*/true));
  linear_fc2 = register_module("linear_fc2", Linear(c.intermediate_size, c.hidden_size, /*bias=*/true));
}

torch::Tensor Qwen3VLVisionMLPImpl::forward(const torch::Tensor& x) {
  return linear_fc2->forward(torch::gelu(linear_fc1->forward(x), gelu_approximate_));
}

// ---------------------------------------------------------------------------------------------
// blocks.{i}

Qwen3VLVisionBlockImpl::Qwen3VLVisionBlockImpl(const VisionConfig& c) {
  norm1 = register_module("norm1", layer_norm(c.hidden_size));
  norm2 = register_module("norm2", layer_norm(c.hidden_size));
  attn = register_module("attn", Qwen3VLVisionAttention(c));
  mlp = register_module("mlp", Qwen3VLVisionMLP(c));
}

torch::Tensor Qwen3VLVisionBlockImpl::forward(const torch::Tensor& x,
                                              const std::vector<int64_t>& seg_lens,
                                              const torch::Tensor& cos, const torch::Tensor& sin) {
  auto h = x + attn->forward(norm1->forward(x), seg_lens, cos, sin);
  return h + mlp->forward(norm2->forward(h));
}

// ---------------------------------------------------------------------------------------------
// merger / deepstack_merger_list.{j}

Qwen3VLVisionPatchMergerImpl::Qwen3VLVisionPatchMergerImpl(const VisionConfig& c,
                                                           bool use_postshuffle_norm)
    : merged_dim_(c.hidden_size * c.spatial_merge_size * c.spatial_merge_size),
      postshuffle_(use_postshuffle_norm) {
  norm = register_module("norm", layer_norm(postshuffle_ ? merged_dim_ : c.hidden_size));
  linear_fc1 = register_module("linear_fc1", Linear(merged_dim_, merged_dim_, /*bias=*/true));
  linear_fc2 = register_module("linear_fc2", Linear(merged_dim_, c.out_hidden_size, /*bias=*/true));
}

torch::Tensor Qwen3VLVisionPatchMergerImpl::forward(const torch::Tensor& x) {
  // Rows are in merge-window order, so m² consecutive rows are one window; view(-1, Dm) concatenates
  // them as [tok(r0,c0) | tok(r0,c1) | tok(r1,c0) | tok(r1,c1)] for m = 2.
  auto y = postshuffle_ ? norm->forward(x.view({-1, merged_dim_}))   // group, then LayerNorm(Dm)
                        : norm->forward(x).view({-1, merged_dim_});  // LayerNorm(Dv), then group
  // Exact erf GELU here (nn.GELU()), unlike the tanh GELU inside the blocks.
  return linear_fc2->forward(torch::gelu(linear_fc1->forward(y)));
}

// ---------------------------------------------------------------------------------------------
// Qwen3VLVisionModel

Qwen3VLVisionModelImpl::Qwen3VLVisionModelImpl(const VisionConfig& c) : cfg_(c) {
  if (c.depth < 0 || c.hidden_size <= 0 || c.num_heads <= 0 || c.hidden_size % c.num_heads != 0)
    throw config_error("hidden_size " + std::to_string(c.hidden_size) +
                       " must be a positive multiple of num_heads " + std::to_string(c.num_heads));
  if (c.head_dim() % 4 != 0)
    throw config_error("head_dim " + std::to_string(c.head_dim()) +
                       " must be a multiple of 4 (2-D RoPE splits it in quarters)");
  if (c.spatial_merge_size <= 0 || c.patch_size <= 0 || c.temporal_patch_size <= 0 ||
      c.in_channels <= 0 || c.intermediate_size <= 0 || c.out_hidden_size <= 0)
    throw config_error("sizes must be positive");
  // HF: int(num_position_embeddings ** 0.5); we require an exact square so the table is a grid.
  num_grid_per_side_ = static_cast<int64_t>(std::sqrt(static_cast<double>(c.num_position_embeddings)));
  while (num_grid_per_side_ * num_grid_per_side_ > c.num_position_embeddings) --num_grid_per_side_;
  while ((num_grid_per_side_ + 1) * (num_grid_per_side_ + 1) <= c.num_position_embeddings)
    ++num_grid_per_side_;
  if (num_grid_per_side_ < 1 || num_grid_per_side_ * num_grid_per_side_ != c.num_position_embeddings)
    throw config_error("num_position_embeddings " + std::to_string(c.num_position_embeddings) +
                       " is not a square");
  for (int64_t idx : c.deepstack_visual_indexes)
    if (idx < 0 || idx >= c.depth)
      throw config_error("deepstack_visual_indexes entry " + std::to_string(idx) +
                         " outside [0, depth=" + std::to_string(c.depth) + ")");

  patch_embed = register_module("patch_embed", Qwen3VLVisionPatchEmbed(c));
  pos_embed = register_module("pos_embed", Embedding(c.num_position_embeddings, c.hidden_size));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.depth; ++i) {
    block_list_.emplace_back(c);
    blocks->push_back(block_list_.back());
  }
  merger = register_module("merger", Qwen3VLVisionPatchMerger(c, /*use_postshuffle_norm=*/false));
  deepstack_merger_list = register_module("deepstack_merger_list", torch::nn::ModuleList());
  for (size_t j = 0; j < c.deepstack_visual_indexes.size(); ++j) {
    deepstack_list_.emplace_back(c, /*use_postshuffle_norm=*/true);
    deepstack_merger_list->push_back(deepstack_list_.back());
  }
}

std::vector<std::array<int64_t, 3>> Qwen3VLVisionModelImpl::read_grid(
    const torch::Tensor& grid_thw) const {
  if (!grid_thw.defined() || grid_thw.dim() != 2 || grid_thw.size(1) != 3)
    throw Error("vision: grid_thw must be [N, 3] (t, h, w)");
  if (grid_thw.is_floating_point() || grid_thw.is_complex())
    throw Error("vision: grid_thw must be an integer tensor");
  auto g = grid_thw.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t* p = g.data_ptr<int64_t>();
  const int64_t m = cfg_.spatial_merge_size;
  std::vector<std::array<int64_t, 3>> out;
  for (int64_t i = 0; i < g.size(0); ++i) {
    std::array<int64_t, 3> thw{p[3 * i], p[3 * i + 1], p[3 * i + 2]};
    if (thw[0] < 1 || thw[1] < 1 || thw[2] < 1 || thw[1] % m != 0 || thw[2] % m != 0)
      throw Error("vision: grid_thw row " + std::to_string(i) + " = (" + std::to_string(thw[0]) +
                  ", " + std::to_string(thw[1]) + ", " + std::to_string(thw[2]) +
                  "): t must be >= 1 and h, w positive multiples of spatial_merge_size " +
                  std::to_string(m));
    out.push_back(thw);
  }
  return out;
}

std::vector<int64_t> Qwen3VLVisionModelImpl::segment_lengths(const torch::Tensor& grid_thw) {
  auto g = grid_thw.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t* p = g.data_ptr<int64_t>();
  std::vector<int64_t> lens;
  for (int64_t i = 0; i < g.size(0); ++i)
    for (int64_t t = 0; t < p[3 * i]; ++t) lens.push_back(p[3 * i + 1] * p[3 * i + 2]);
  return lens;
}

torch::Tensor Qwen3VLVisionModelImpl::inv_freq() const {
  // VisionRotaryEmbedding(dim = hd/2, theta = 10000): 1 / theta^(arange(0, dim, 2) / dim), fp32 on
  // CPU like HF's init-time buffer (pow(Scalar, Tensor) then reciprocal, as Python's 1.0 / t).
  const int64_t dim = cfg_.head_dim() / 2;
  auto e = torch::arange(0, dim, 2, torch::kFloat) / dim;
  return torch::pow(10000.0, e).reciprocal();  // [hd/4]
}

torch::Tensor Qwen3VLVisionModelImpl::fast_pos_embed_interpolate(const torch::Tensor& grid_thw) {
  const auto grid = read_grid(grid_thw);
  const int64_t G = num_grid_per_side_, m = cfg_.spatial_merge_size;
  const auto& table = pos_embed->weight;  // [G·G, Dv], row = grid_row·G + grid_col

  // Corner indices and bilinear weights for every item, built on CPU in fp32 exactly as HF does.
  std::vector<torch::Tensor> idx[4], wts[4];
  for (const auto& thw : grid) {
    const int64_t h = thw[1], w = thw[2];
    auto hi = torch::linspace(0, G - 1, h, torch::kFloat);  // [h], CPU (HF passes no device)
    auto wi = torch::linspace(0, G - 1, w, torch::kFloat);  // [w]
    auto hf = hi.to(torch::kInt), wf = wi.to(torch::kInt);  // trunc (= floor, values >= 0)
    auto hc = (hf + 1).clamp_max(G - 1), wc = (wf + 1).clamp_max(G - 1);
    auto dh = hi - hf, dw = wi - wf;  // fp32 fractional parts
    auto rf = (hf * G).to(torch::kLong).unsqueeze(1), rc = (hc * G).to(torch::kLong).unsqueeze(1);
    auto cf = wf.to(torch::kLong).unsqueeze(0), cc = wc.to(torch::kLong).unsqueeze(0);
    idx[0].push_back((rf + cf).flatten());  // (floor row, floor col)  [h·w], row-major over (i, j)
    idx[1].push_back((rf + cc).flatten());  // (floor row, ceil col)
    idx[2].push_back((rc + cf).flatten());  // (ceil row, floor col)
    idx[3].push_back((rc + cc).flatten());  // (ceil row, ceil col)
    auto dh1 = (1 - dh).unsqueeze(1), dh0 = dh.unsqueeze(1);
    auto dw1 = (1 - dw).unsqueeze(0), dw0 = dw.unsqueeze(0);
    wts[0].push_back((dh1 * dw1).flatten());
    wts[1].push_back((dh1 * dw0).flatten());
    wts[2].push_back((dh0 * dw1).flatten());
    wts[3].push_back((dh0 * dw0).flatten());
  }
  const auto dev = table.device();
  auto idx_t = torch::stack({torch::cat(idx[0]), torch::cat(idx[1]), torch::cat(idx[2]),
                             torch::cat(idx[3])})
                   .to(dev);  // [4, Σh·w]
  // HF goes fp32 -> Python float -> torch.tensor(dtype=table dtype): one rounding to the table dtype
  // (bf16 for real checkpoints) before the multiply.
  auto w_t = torch::stack({torch::cat(wts[0]), torch::cat(wts[1]), torch::cat(wts[2]),
                           torch::cat(wts[3])})
                 .to(dev, table.scalar_type());  // [4, Σh·w]
  auto e = pos_embed->forward(idx_t) * w_t.unsqueeze(-1);  // [4, Σh·w, Dv] in the table dtype
  auto p = ((e[0] + e[1]) + e[2]) + e[3];                    // left-to-right, each add rounded

  // Per item: repeat over t, then reorder row-major (t, i, j) -> merge-window order
  // (t, block_row, block_col, intra_row, intra_col).
  std::vector<torch::Tensor> out;
  int64_t off = 0;
  for (const auto& thw : grid) {
    const int64_t t = thw[0], h = thw[1], w = thw[2];
    auto pi = p.slice(0, off, off + h * w).repeat({t, 1});
    off += h * w;
    out.push_back(
        pi.view({t, h / m, m, w / m, m, -1}).permute({0, 1, 3, 2, 4, 5}).flatten(0, 4));
  }
  return torch::cat(out);  // [L, Dv]
}

torch::Tensor Qwen3VLVisionModelImpl::rot_pos_emb(const torch::Tensor& grid_thw) {
  const auto grid = read_grid(grid_thw);
  const int64_t m = cfg_.spatial_merge_size;
  const auto dev = pos_embed->weight.device();
  int64_t max_hw = 0;
  for (const auto& thw : grid) max_hw = std::max({max_hw, thw[1], thw[2]});
  // freq_table[r] = r · inv_freq, fp32 on the model device (HF: outer(arange, inv_freq) on device).
  auto table = torch::outer(torch::arange(max_hw, torch::dtype(torch::kFloat).device(dev)),
                            inv_freq().to(dev));  // [max_hw, hd/4]

  // (row, col) of every token in merge-window order, full patch resolution; integer work on CPU.
  std::vector<torch::Tensor> coords;
  for (const auto& thw : grid) {
    const int64_t t = thw[0], h = thw[1], w = thw[2];
    auto br = torch::arange(h / m, torch::kLong).view({-1, 1, 1, 1});
    auto bc = torch::arange(w / m, torch::kLong).view({1, -1, 1, 1});
    auto ir = torch::arange(m, torch::kLong).view({1, 1, -1, 1});
    auto ic = torch::arange(m, torch::kLong).view({1, 1, 1, -1});
    auto row = (br * m + ir).expand({h / m, w / m, m, m}).reshape({-1});
    auto col = (bc * m + ic).expand({h / m, w / m, m, m}).reshape({-1});
    coords.push_back(torch::stack({row, col}, -1).repeat({t, 1}));  // [t·h·w, 2]
  }
  auto pos = torch::cat(coords).to(dev);  // [L, 2]
  const int64_t L = pos.size(0);
  // [L, 2, hd/4] -> [L, hd/2] = [row·inv_freq | col·inv_freq]
  return table.index_select(0, pos.view({-1})).view({L, -1});
}

VisionOutput Qwen3VLVisionModelImpl::forward(const torch::Tensor& pixel_values,
                                             const torch::Tensor& grid_thw) {
  const auto grid = read_grid(grid_thw);
  int64_t L = 0;
  for (const auto& thw : grid) L += thw[0] * thw[1] * thw[2];
  const int64_t patch_dim =
      cfg_.in_channels * cfg_.temporal_patch_size * cfg_.patch_size * cfg_.patch_size;
  if (!pixel_values.defined() || pixel_values.dim() != 2 || pixel_values.size(0) != L ||
      pixel_values.size(1) != patch_dim)
    throw Error("vision: pixel_values must be [" + std::to_string(L) + ", " +
                std::to_string(patch_dim) + "] for this grid_thw, got " +
                (pixel_values.defined() ? c10::str(pixel_values.sizes()) : std::string("undefined")));

  auto x = patch_embed->forward(pixel_values);     // [L, Dv], weight dtype
  x = x + fast_pos_embed_interpolate(grid_thw);    // same dtype add

  auto rot = rot_pos_emb(grid_thw);                // [L, hd/2] fp32
  auto emb = torch::cat({rot, rot}, -1);           // [L, hd]
  auto cos = emb.cos(), sin = emb.sin();           // fp32, model device
  const auto seg = segment_lengths(grid_thw);

  VisionOutput out;
  const auto& taps = cfg_.deepstack_visual_indexes;
  for (size_t i = 0; i < block_list_.size(); ++i) {
    x = block_list_[i]->forward(x, seg, cos, sin);
    // HF: `if layer_num in indexes: merger_list[indexes.index(layer_num)]` — outputs in layer order.
    auto it = std::find(taps.begin(), taps.end(), static_cast<int64_t>(i));
    if (it != taps.end()) out.deepstack.push_back(deepstack_list_[it - taps.begin()]->forward(x));
  }
  out.merged = merger->forward(x);  // [L/m², H]
  return out;
}

}  // namespace pvm
