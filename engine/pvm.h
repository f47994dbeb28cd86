// Persistent Visual Memory block (arXiv 2605.00814): a gated cross-attention branch beside the MLP
// of chosen decoder layers that re-reads the visual embeddings. Weight names equal the official
// checkpoints (model.language_model.layers.{L}.pvm_block.*).
#pragma once
#include <string>
#include <vector>

#include "engine/base/config.h"
#include "engine/nn.h"
#include "engine/text_model.h"
#include "engine/torch_pch.h"

namespace pvm {

// Visual rows (row-major over the batch, as masked_scatter fills them) regrouped per batch row:
// flat [N, H], mask [B, S] -> vis [B, Nmax, H] and valid [B, Nmax] (undefined when all rows have Nmax).
std::pair<torch::Tensor, torch::Tensor> split_visual_rows(const torch::Tensor& flat, const torch::Tensor& mask);

class PvmCrossAttentionImpl : public torch::nn::Module {
 public:
  PvmCrossAttentionImpl(int64_t d, int64_t heads, int64_t kv_heads, int64_t head_dim, double eps);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  Qwen3VLTextRMSNorm q_norm{nullptr}, k_norm{nullptr};
  int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(PvmCrossAttention);

class PvmBlockImpl : public torch::nn::Module {
 public:
  explicit PvmBlockImpl(const ModelConfig& c);
  // Reduced keys/values of the visual memory. vis: [B, Nv, H]; valid: [B, Nv] bool (or undefined).
  PvmMemory make_memory(const torch::Tensor& vis, const torch::Tensor& valid);
  // h_mid: [B, S, H] post-attention residual; silence: [B, S] bool placeholder positions (or
  // undefined). Returns gate_alpha * rmsnorm(expander(...)) [B, S, H], zero at silenced positions.
  torch::Tensor forward(const torch::Tensor& h_mid, const PvmMemory& mem, const torch::Tensor& silence,
                        PvmProbe* probe = nullptr);

  Linear text_reducer{nullptr}, vision_reducer{nullptr}, output_expander{nullptr};
  Qwen3VLTextRMSNorm input_norm{nullptr}, post_attn_norm{nullptr};
  PvmCrossAttention cross_attn{nullptr};
  Qwen3VLTextMLP mlp{nullptr};
  torch::Tensor gate_alpha;  // [1], 0 at init: the block starts inert
  double eps;
  std::string source;   // "embeddings" | "hidden" (ablation: this layer's residual at visual positions)
  std::string variant;  // "pvm" | "mlp" (iso-parameter ablation: no visual input)
};
TORCH_MODULE(PvmBlock);

// Add PVM blocks to the layers of c.text.pvm_layers (replacing existing ones); parameters are
// created with the current ParamOptionsGuard options and random-initialised as docs/MODEL.md#pvm says
// (N(0, 0.02) matrices, norms 1, gate 0) with `seed`.
class Qwen3VLForConditionalGenerationImpl;
void attach_pvm(Qwen3VLForConditionalGenerationImpl& m, const TextConfig& pvm_fields, uint64_t seed = 0);
void detach_pvm(Qwen3VLForConditionalGenerationImpl& m);

// Adapters: adapter.safetensors (official key names) + adapter_config.json
// {"pvm_hidden_size", "pvm_layers", "pvm_source", "pvm_variant", "base_hidden_size", "base_num_hidden_layers"}.
void save_pvm_adapter(Qwen3VLForConditionalGenerationImpl& m, const std::string& dir);
// Attaches blocks as the adapter config says and loads their weights (strict). Errors name the file.
void load_pvm_adapter(Qwen3VLForConditionalGenerationImpl& m, const std::string& dir);

}  // namespace pvm
