// Qwen3-VL vision tower (`model.visual`): patch embed + resampled learned position table + ViT blocks
// with 2-D RoPE and per-image block-diagonal attention + 2x2 patch merger + DeepStack mergers.
// Facts: docs/MODEL.md#vision-tower, #weight-names, #numerics.
//
// Built on the layers of engine/nn.h, like the text decoder: parameters are created in the dtype and
// on the device of the surrounding ParamOptionsGuard, random weights come from init_weights.
//
// Every registered submodule / parameter name equals the HF checkpoint name, so that
// named_parameters() yields `patch_embed.proj.weight`, `pos_embed.weight`, `blocks.{i}.attn.qkv.weight`,
// `merger.linear_fc1.weight`, `deepstack_merger_list.{j}.norm.weight`, ... (the parent registers the
// model as `visual` under `model`). There are no buffers: the RoPE inv_freq is rebuilt in fp32 on every
// call, which keeps it out of the state dict and safe from module.to(bf16) (HF: non-persistent fp32).
//
// Shapes: L = Σ t·h·w patches (grid units), Dv = hidden_size, nh = num_heads, hd = Dv/nh,
// m = spatial_merge_size (window = m·m patches), Dm = Dv·m·m, H = out_hidden_size.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/base/config.h"
#include "engine/nn.h"
#include "engine/torch_pch.h"

namespace pvm {

struct VisionOutput {
  torch::Tensor merged;                // [L/4, out_hidden]
  std::vector<torch::Tensor> deepstack;  // one per tap, each [L/4, out_hidden]
};

// `patch_embed`: Conv3d with kernel = stride = (T, P, P) applied to each flattened patch.
class Qwen3VLVisionPatchEmbedImpl : public torch::nn::Module {
 public:
  explicit Qwen3VLVisionPatchEmbedImpl(const VisionConfig& c);
  // x: [L, C·T·P·P] any float dtype/device -> [L, Dv] in proj's dtype on proj's device.
  torch::Tensor forward(const torch::Tensor& x);
  Conv3d proj{nullptr};

 private:
  int64_t in_channels_, temporal_patch_size_, patch_size_, embed_dim_;
};
TORCH_MODULE(Qwen3VLVisionPatchEmbed);

// `blocks.{i}.attn`: fused qkv, 2-D RoPE on q/k, attention inside each segment only, output proj.
class Qwen3VLVisionAttentionImpl : public torch::nn::Module {
 public:
  explicit Qwen3VLVisionAttentionImpl(const VisionConfig& c);
  // x: [L, Dv]; seg_lens: segment lengths summing to L; cos/sin: [L, hd] fp32 -> [L, Dv].
  torch::Tensor forward(const torch::Tensor& x, const std::vector<int64_t>& seg_lens,
                        const torch::Tensor& cos, const torch::Tensor& sin);
  Linear qkv{nullptr}, proj{nullptr};

 private:
  int64_t num_heads_, head_dim_;
  double scale_;
};
TORCH_MODULE(Qwen3VLVisionAttention);

// `blocks.{i}.mlp`: linear_fc1 -> hidden_act (gelu tanh for Qwen3-VL) -> linear_fc2.
class Qwen3VLVisionMLPImpl : public torch::nn::Module {
 public:
  explicit Qwen3VLVisionMLPImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // [L, Dv] -> [L, Dv]
  Linear linear_fc1{nullptr}, linear_fc2{nullptr};

 private:
  std::string gelu_approximate_;  // "tanh" or "none"
};
TORCH_MODULE(Qwen3VLVisionMLP);

// `blocks.{i}`: pre-norm transformer block.
class Qwen3VLVisionBlockImpl : public torch::nn::Module {
 public:
  explicit Qwen3VLVisionBlockImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const std::vector<int64_t>& seg_lens,
                        const torch::Tensor& cos, const torch::Tensor& sin);
  LayerNorm norm1{nullptr}, norm2{nullptr};
  Qwen3VLVisionAttention attn{nullptr};
  Qwen3VLVisionMLP mlp{nullptr};
};
TORCH_MODULE(Qwen3VLVisionBlock);

// `merger` (postshuffle_norm=false: LayerNorm(Dv) per patch, then group the window) and
// `deepstack_merger_list.{j}` (postshuffle_norm=true: group the window, then LayerNorm(Dm)).
class Qwen3VLVisionPatchMergerImpl : public torch::nn::Module {
 public:
  Qwen3VLVisionPatchMergerImpl(const VisionConfig& c, bool use_postshuffle_norm);
  torch::Tensor forward(const torch::Tensor& x);  // [L, Dv] (window-ordered) -> [L/m², H]
  LayerNorm norm{nullptr};
  Linear linear_fc1{nullptr}, linear_fc2{nullptr};

 private:
  int64_t merged_dim_;
  bool postshuffle_;
};
TORCH_MODULE(Qwen3VLVisionPatchMerger);

class Qwen3VLVisionModelImpl : public torch::nn::Module {
 public:
  explicit Qwen3VLVisionModelImpl(const VisionConfig& c);

  // pixel_values: [L, C·T·P·P] (f32 from the processor, rows in merge-window order, docs/MODEL.md#image-preprocessing);
  // grid_thw: [N, 3] int64 (t, h, w) per item, h and w multiples of m. Runs in the weights' dtype
  // on the weights' device.
  VisionOutput forward(const torch::Tensor& pixel_values, const torch::Tensor& grid_thw);

  const VisionConfig& config() const { return cfg_; }

  // ---- pieces of forward, public for tests and probes ----
  // Bilinear (align_corners=True) resample of the G×G pos_embed table to each item's h×w, repeated
  // over t and put in merge-window order: [L, Dv] in the table's dtype/device (docs/MODEL.md#vision-tower).
  torch::Tensor fast_pos_embed_interpolate(const torch::Tensor& grid_thw);
  // Per-token RoPE angles [L, hd/2] fp32 on the weights' device: [row·inv_freq | col·inv_freq] (docs/MODEL.md#vision-tower).
  torch::Tensor rot_pos_emb(const torch::Tensor& grid_thw);
  // inv_freq[k] = 1 / 10000^(2k/(hd/2)), k < hd/4, fp32 on CPU.
  torch::Tensor inv_freq() const;
  // Attention segment lengths: h·w repeated t times per item (HF cu_seqlens differences).
  static std::vector<int64_t> segment_lengths(const torch::Tensor& grid_thw);

  Qwen3VLVisionPatchEmbed patch_embed{nullptr};
  Embedding pos_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  Qwen3VLVisionPatchMerger merger{nullptr};
  torch::nn::ModuleList deepstack_merger_list{nullptr};

 private:
  // grid_thw as a list of (t, h, w), validated against the config.
  std::vector<std::array<int64_t, 3>> read_grid(const torch::Tensor& grid_thw) const;

  VisionConfig cfg_;
  int64_t num_grid_per_side_;
  std::vector<Qwen3VLVisionBlock> block_list_;            // typed views of `blocks`
  std::vector<Qwen3VLVisionPatchMerger> deepstack_list_;  // typed views of `deepstack_merger_list`
};
TORCH_MODULE(Qwen3VLVisionModel);

// HF apply_rotary_pos_emb_vision: q,k [L, nh, hd] any dtype, cos/sin [L, hd]; rotation in fp32,
// results cast back to the input dtypes.
std::pair<torch::Tensor, torch::Tensor> apply_rotary_pos_emb_vision(const torch::Tensor& q,
                                                                     const torch::Tensor& k,
                                                                     const torch::Tensor& cos,
                                                                     const torch::Tensor& sin);

}  // namespace pvm
