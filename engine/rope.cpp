#include "engine/rope.h"

#include <algorithm>

#include "engine/base/error.h"

namespace pvm {

RopeIndex rope_index(const std::vector<std::vector<int64_t>>& ids,
                     const std::vector<std::array<int64_t, 3>>& grids, const ModelConfig& cfg,
                     const std::vector<std::vector<int64_t>>* attention_mask) {
  const int64_t B = ids.size();
  const int64_t S = B ? ids[0].size() : 0;
  const int64_t m = cfg.vision.spatial_merge_size;
  auto pos = torch::ones({3, B, S}, torch::kLong);
  auto P = pos.accessor<int64_t, 3>();
  RopeIndex out;
  size_t item = 0;
  for (int64_t b = 0; b < B; ++b) {
    if ((int64_t)ids[b].size() != S) throw Error("rope_index: rows of different length");
    const auto* mask = attention_mask ? &(*attention_mask)[b] : nullptr;
    int64_t next = 0;  // max position so far + 1
    for (int64_t s = 0; s < S;) {
      if (mask && !(*mask)[s]) {  // padding keeps HF's filler value 1
        ++s;
        continue;
      }
      int64_t tok = ids[b][s];
      if (tok == cfg.video_token_id) throw Error("video inputs are not supported yet");
      if (tok != cfg.image_token_id) {
        P[0][b][s] = P[1][b][s] = P[2][b][s] = next++;
        ++s;
        continue;
      }
      if (item >= grids.size())
        throw Error("prompt has more image placeholder runs than images (" + std::to_string(grids.size()) + ")");
      auto [gt, h, w] = grids[item++];
      const int64_t gh = h / m, gw = w / m, n = gt * gh * gw;
      int64_t run = 0;
      while (s + run < S && ids[b][s + run] == cfg.image_token_id && (!mask || (*mask)[s + run])) ++run;
      if (run < n || (run > n && item >= grids.size()))
        throw Error("image " + std::to_string(item - 1) + ": prompt has " + std::to_string(run) +
                    " image tokens but its grid " + std::to_string(gt) + "x" + std::to_string(h) + "x" +
                    std::to_string(w) + " needs " + std::to_string(n));
      const int64_t s0 = next;
      for (int64_t ti = 0; ti < gt; ++ti)
        for (int64_t hi = 0; hi < gh; ++hi)
          for (int64_t wi = 0; wi < gw; ++wi, ++s) {
            P[0][b][s] = s0 + ti;
            P[1][b][s] = s0 + hi;
            P[2][b][s] = s0 + wi;
          }
      next = s0 + std::max({gt, gh, gw});
    }
    out.rope_deltas.push_back(next - S);
  }
  if (item != grids.size())
    throw Error("got " + std::to_string(grids.size()) + " images but the prompt has " + std::to_string(item) +
                " image placeholder runs");
  out.position_ids = pos;
  return out;
}

RopeTable mrope_cos_sin(const torch::Tensor& position_ids, const TextConfig& t, torch::ScalarType dtype,
                        torch::Device device) {
  const int64_t D = t.head_dim;
  // inv_freq exactly as HF: 1 / base ** (arange(0, D, 2).float() / D), in f32.
  auto exponent = torch::arange(0, D, 2, torch::kLong).to(torch::kFloat) / (double)D;
  auto inv_freq = 1.0 / torch::pow(torch::tensor((float)t.rope_theta), exponent);
  inv_freq = inv_freq.to(device);
  auto p = position_ids.to(device).to(torch::kFloat);           // [3, B, S]
  auto freqs = p.unsqueeze(-1) * inv_freq.view({1, 1, 1, -1});  // [3, B, S, D/2]
  auto f = freqs[0].clone();
  for (int dim = 1; dim <= 2; ++dim) {
    int64_t len = t.mrope_section[dim] * 3;
    auto idx = torch::arange(dim, len, 3, torch::TensorOptions().dtype(torch::kLong).device(device));
    f.index_copy_(-1, idx, freqs[dim].index_select(-1, idx));
  }
  auto emb = torch::cat({f, f}, -1);  // [B, S, D]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);  // broadcast over heads
  return x * c + rotate_half(x) * s;
}

}  // namespace pvm
