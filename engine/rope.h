// Interleaved multimodal RoPE (MRoPE) of the Qwen3-VL text decoder and its position ids.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "engine/base/config.h"
#include "engine/torch_pch.h"

namespace pvm {

struct RopeIndex {
  torch::Tensor position_ids;  // [3, B, S] int64 (streams T, H, W)
  std::vector<int64_t> rope_deltas;  // per row: (max position + 1) - S
};

// Position ids as HF's get_rope_index: text runs continue at max+1 on all streams; an image with
// grid (t, h, w) gets T = s0 + ti, H = s0 + hi/merge, W = s0 + wi/merge over its merged grid.
// `grids` are consumed in order of appearance across the batch (row-major). `attention_mask`
// (optional, [B, S], 1 = real token) gives padded positions the value 1, as HF does.
// Throws pvm::Error if an image run's length disagrees with its grid or grids are left over.
RopeIndex rope_index(const std::vector<std::vector<int64_t>>& ids,
                     const std::vector<std::array<int64_t, 3>>& grids, const ModelConfig& cfg,
                     const std::vector<std::vector<int64_t>>* attention_mask = nullptr);

// cos/sin for the given position ids: [B, S, head_dim] in `dtype` (computed in f32 then cast, as
// HF does). Frequencies interleave T/H/W with period 3 over j < 3*max(section) as mrope_section says.
struct RopeTable {
  torch::Tensor cos, sin;
};
RopeTable mrope_cos_sin(const torch::Tensor& position_ids, const TextConfig& t, torch::ScalarType dtype,
                        torch::Device device);

// rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2]), the rotation convention of both the text
// MRoPE and the vision tower's 2-D RoPE.
torch::Tensor rotate_half(const torch::Tensor& x);

// x: [B, heads, S, D]; cos/sin: [B, S, D]. Computed in x's dtype, op by op like HF.
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace pvm
