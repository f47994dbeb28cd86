// Qwen3 text decoder of Qwen3-VL (model.language_model.*): RMSNorm, GQA attention with per-head
// q/k norm before interleaved MRoPE, SwiGLU MLP, DeepStack injection after the first layers.
#pragma once
#include <functional>
#include <map>
#include <vector>

#include "engine/base/config.h"
#include "engine/nn.h"
#include "engine/rope.h"
#include "engine/torch_pch.h"

namespace pvm {

// K/V of the PVM visual memory for one PVM layer, computed at prefill and reused when decoding.
struct PvmMemory {
  torch::Tensor k, v;  // [B, kv_heads, Nv, head_dim]
  torch::Tensor bias;  // [B, 1, 1, Nv] f32 additive: 0 real, -inf padding; undefined = no padding
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

// Preallocated KV cache: one [B, Hkv, capacity, D] tensor pair per layer.
struct KVCache {
  std::vector<torch::Tensor> k, v;
  std::map<int64_t, PvmMemory> pvm;  // per PVM layer, filled at prefill
  int64_t length = 0;    // tokens already cached
  int64_t capacity = 0;
  void allocate(const TextConfig& t, int64_t batch, int64_t capacity, torch::ScalarType dtype, torch::Device dev);
  // Repeat every cached row `n` times along the batch (prefill once, decode a group of n).
  void repeat_batch(int64_t n);
  int64_t batch() const { return k.empty() ? 0 : k[0].size(0); }
};

// Receives the softmax attention probabilities of the LAST query position of a forward pass,
// exactly those used to produce the output: probs [B, Hq, T] f32, layer index.
using AttentionObserver = std::function<void(int64_t layer, const torch::Tensor& probs)>;

class Qwen3VLTextDecoderLayerImpl;

// Everything a forward pass shares across layers.
struct ForwardState {
  RopeTable rope;                        // cos/sin [B, S, D]
  torch::Tensor visual_mask;             // [B, S] bool; defined only when images are in this chunk
  std::vector<torch::Tensor> deepstack;  // per tap: [num visual tokens, H]
  KVCache* cache = nullptr;              // null = no cache (attend within this call only)
  torch::Tensor key_valid;               // optional [B, T] bool over all keys (padding), T = cache len + S
  AttentionObserver observer;            // optional probe of last-position attention
  // PVM: on when blocks exist and this is true (baseline and PVM share one loaded backbone).
  bool pvm_enabled = true;
  torch::Tensor image_embeds;                 // [Nv, H] merger output of this chunk (PVM "embeddings" source)
  std::map<int64_t, PvmMemory> pvm_memory;    // used when there is no cache
  std::map<int64_t, PvmProbe>* pvm_probes = nullptr;  // request PVM probes of the last position
  std::function<void(int64_t layer, const torch::Tensor& hidden)> layer_output_hook;  // logit lens
  // Optional replacement for `layer.forward(h, st)` (the trainer's activation checkpointing).
  std::function<torch::Tensor(Qwen3VLTextDecoderLayerImpl& layer, const torch::Tensor& h, ForwardState& st)>
      layer_runner;
};

class Qwen3VLTextRMSNormImpl : public torch::nn::Module {
 public:
  Qwen3VLTextRMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(Qwen3VLTextRMSNorm);

class Qwen3VLTextAttentionImpl : public torch::nn::Module {
 public:
  Qwen3VLTextAttentionImpl(const TextConfig& t, int64_t layer_idx);
  // x: [B, S, H] -> [B, S, H]
  torch::Tensor forward(const torch::Tensor& x, ForwardState& st);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  Qwen3VLTextRMSNorm q_norm{nullptr}, k_norm{nullptr};
  int64_t layer_idx, n_heads, n_kv, head_dim;
};
TORCH_MODULE(Qwen3VLTextAttention);

class Qwen3VLTextMLPImpl : public torch::nn::Module {
 public:
  Qwen3VLTextMLPImpl(int64_t hidden, int64_t inter);
  torch::Tensor forward(const torch::Tensor& x);
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Qwen3VLTextMLP);

class PvmBlockImpl;

class Qwen3VLTextDecoderLayerImpl : public torch::nn::Module {
 public:
  Qwen3VLTextDecoderLayerImpl(const TextConfig& t, int64_t layer_idx);
  torch::Tensor forward(const torch::Tensor& x, ForwardState& st);
  Qwen3VLTextAttention self_attn{nullptr};
  Qwen3VLTextMLP mlp{nullptr};
  Qwen3VLTextRMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  std::shared_ptr<PvmBlockImpl> pvm_block;  // registered as "pvm_block" in PVM layers
  int64_t layer_idx;
};
TORCH_MODULE(Qwen3VLTextDecoderLayer);

class Qwen3VLTextModelImpl : public torch::nn::Module {
 public:
  explicit Qwen3VLTextModelImpl(const TextConfig& t);
  // inputs_embeds [B, S, H] (image rows already scattered in) -> final-normed hidden [B, S, H]
  torch::Tensor forward(const torch::Tensor& inputs_embeds, ForwardState& st);
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  Qwen3VLTextRMSNorm norm{nullptr};
  std::vector<Qwen3VLTextDecoderLayer> layer_list;  // typed view of `layers`
  TextConfig cfg;
};
TORCH_MODULE(Qwen3VLTextModel);

// Attention core used by the decoder: q [B, Hq, S, D], k/v [B, Hkv, T, D] (GQA without copying
// k/v), causal with queries at absolute positions q_offset..q_offset+S-1. Without an observer it
// runs LibTorch's fused scaled_dot_product_attention (except f32 decode steps on the CPU, faster
// explicit). With one (a probe wants the probabilities), an explicit f32 softmax, long prefills in query chunks to bound memory, calling `observer` with
// the last query's probabilities [B, Hq, T].
torch::Tensor gqa_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t q_offset,
                            const torch::Tensor& key_valid, const std::function<void(const torch::Tensor&)>& observer);
// Which path gqa_attention takes without an observer: Auto (as above), or forced (tests and
// benchmarks compare the two).
enum class AttentionPath { Auto, Explicit, Fused };
void set_attention_path(AttentionPath p);
AttentionPath attention_path();

}  // namespace pvm
