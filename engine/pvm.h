// Persistent Visual Memory (arXiv 2605.00814, docs/MODEL.md#pvm): a gated cross-attention branch
// beside the MLP of chosen decoder layers that re-reads the visual embeddings. This file holds the
// whole concept: the memory (its source rows, their reduced K/V built at the prefill and cached for
// decoding), the block, its probe and the adapters. Weight names equal the official checkpoints
// (model.language_model.layers.{L}.pvm_block.*).
#pragma once
#include <string>
#include <vector>

#include <map>

#include "engine/base/config.h"
#include "engine/nn.h"
#include "engine/torch_pch.h"

namespace pvm {

// What the PVM blocks of one forward read besides the hidden states.
struct PvmInputs {
  bool enabled = true;         // false: the baseline (PVM and baseline share one loaded backbone)
  torch::Tensor image_embeds;  // [Nv, H] merger output of this chunk: the memory's "embeddings" source
};

// The visual memory of one PVM layer: its rows reduced and projected to K/V.
struct PvmMemory {
  torch::Tensor k, v;  // [B, kv_heads, Nv, head_dim]
  torch::Tensor bias;  // [B, 1, 1, Nv] f32 additive: 0 real, -inf padding; undefined = no padding
};

// The memories of every PVM layer for the sequences of a KV cache: built at the prefill (the
// chunk that holds the images) and read at every decode step (the official code recomputes them).
struct PvmMemoryCache {
  std::map<int64_t, PvmMemory> layers;  // by decoder layer
  // Repeat every row `n` times along the batch (prefill once, decode a group of n).
  void repeat_batch(int64_t n);
};

// What a PVM block reports for the last position of a forward (probes); filled on request.
struct PvmProbe {
  // Views of the last position (no work is done for the probe inside the block; the recorder
  // reduces them, on the host when they are f32 CPU tensors).
  torch::Tensor attn;       // [B, heads, Nv] f32 attention over the visual tokens
  torch::Tensor injection;  // [B, H] the PVM output (norm = injection norm)
  torch::Tensor residual;   // [B, H] h_mid, the residual it is added to
  torch::Tensor gate;       // [1] gate_alpha
};

// Visual rows (row-major over the batch, as masked_scatter fills them) regrouped per batch row:
// flat [N, H], mask [B, S] -> vis [B, Nmax, H] and valid [B, Nmax] (undefined when all rows have Nmax).
std::pair<torch::Tensor, torch::Tensor> split_visual_rows(const torch::Tensor& flat, const torch::Tensor& mask);

class PvmCrossAttentionImpl : public torch::nn::Module {
 public:
  PvmCrossAttentionImpl(int64_t d, int64_t heads, int64_t kv_heads, int64_t head_dim, double eps);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};
  int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(PvmCrossAttention);

class PvmBlockImpl : public torch::nn::Module {
 public:
  // The block of decoder layer `layer`.
  PvmBlockImpl(const ModelConfig& c, int64_t layer);

  // What the decoder layer calls. h_mid: [B, S, H] post-attention residual; visual_mask: [B, S]
  // bool, defined when this chunk holds the images (the prefill). Then the layer's memory is built
  // (memory_rows, make_memory) and kept in `cache` (null: for this call only); otherwise the cached
  // one is read. Returns the read-out [B, S, H] to add beside the MLP, or an undefined tensor when
  // there is no memory (a text-only prompt gets no PVM). `probes` (optional) gets this layer's probe
  // when the block runs.
  torch::Tensor forward(const torch::Tensor& h_mid, const torch::Tensor& visual_mask, const PvmInputs& in,
                        PvmMemoryCache* cache, std::map<int64_t, PvmProbe>* probes = nullptr);

  // The rows the memory holds, [Nv, H] over the batch: the merger output, or for the "hidden"
  // ablation this layer's residual at the visual positions.
  torch::Tensor memory_rows(const torch::Tensor& h_mid, const torch::Tensor& visual_mask, const PvmInputs& in);
  // Reduced keys/values of the visual memory. vis: [B, Nv, H]; valid: [B, Nv] bool (or undefined).
  PvmMemory make_memory(const torch::Tensor& vis, const torch::Tensor& valid);
  // The read-out from a built memory. silence: [B, S] bool placeholder positions (or undefined).
  // Returns gate_alpha * rmsnorm(expander(...)) [B, S, H], zero at silenced positions.
  torch::Tensor forward(const torch::Tensor& h_mid, const PvmMemory& mem, const torch::Tensor& silence,
                        PvmProbe* probe = nullptr);

  Linear text_reducer{nullptr}, vision_reducer{nullptr}, output_expander{nullptr};
  RMSNorm input_norm{nullptr}, post_attn_norm{nullptr};
  PvmCrossAttention cross_attn{nullptr};
  GatedMLP mlp{nullptr};
  torch::Tensor gate_alpha;  // [1], 0 at init: the block starts inert
  int64_t layer_idx;
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
