// Qwen3 text decoder of Qwen3-VL (model.language_model.*): RMSNorm, GQA attention with per-head
// q/k norm before interleaved MRoPE, SwiGLU MLP, DeepStack injection after the first layers, a PVM
// block beside the MLP in PVM layers (engine/pvm.h). Facts: docs/MODEL.md#text-decoder.
//
// The forward contract is three parts: DecoderInputs (what this chunk is: positions, visual
// positions, DeepStack features, PVM's memory source), KVCache (what earlier chunks left: keys and
// values, PVM memories) and ForwardHooks (who watches: probes, the trainer's layer runner).
#pragma once
#include <functional>
#include <map>
#include <vector>

#include "engine/base/config.h"
#include "engine/nn.h"
#include "engine/pvm.h"
#include "engine/rope.h"
#include "engine/torch_pch.h"

namespace pvm {

// Inputs of one decoder forward besides the hidden states; the model's forward builds them from
// its ForwardInput (engine/model.h).
struct DecoderInputs {
  RopeTable rope;                        // cos/sin [B, S, D]
  torch::Tensor visual_mask;             // [B, S] bool; defined only when images are in this chunk
  std::vector<torch::Tensor> deepstack;  // per tap: [num visual tokens, H]
  torch::Tensor key_valid;               // optional [B, T] bool over all keys (padding), T = cache len + S
  torch::Tensor key_bias;                // optional [B or 1, >= T] or [B or 1, S, T] f32 added to the attention logits
  torch::Tensor key_allowed;             // optional [B, S, T] bool, AND-ed with the causal mask (ForwardInput)
  PvmInputs pvm;                         // what the PVM blocks read (engine/pvm.h)
};

// Preallocated KV cache: one [B, Hkv, capacity, D] tensor pair per layer, and the PVM memories,
// which are fixed after the prefill like the prompt's keys.
struct KVCache {
  std::vector<torch::Tensor> k, v;
  PvmMemoryCache pvm;
  int64_t length = 0;    // tokens already cached
  int64_t capacity = 0;
  void allocate(const TextConfig& t, int64_t batch, int64_t capacity, torch::ScalarType dtype, torch::Device dev);
  // Repeat every cached row `n` times along the batch (prefill once, decode a group of n).
  void repeat_batch(int64_t n);
  int64_t batch() const { return k.empty() ? 0 : k[0].size(0); }
};

class Qwen3VLTextDecoderLayerImpl;
struct ForwardHooks;

// Receives the softmax attention probabilities of the LAST query position of a forward pass,
// exactly those used to produce the output: probs [B, Hq, T] f32, layer index.
using AttentionObserver = std::function<void(int64_t layer, const torch::Tensor& probs)>;
// Receives the probabilities of every query position: probs [B, Hq, n, T] f32 for the query rows
// s0..s0+n-1 of the forward (long prefills come in several calls), layer index. Set only where the
// rows themselves are studied (VisMem's probe of the inserted memory rows); it forces the explicit path.
using AttentionRowsObserver = std::function<void(int64_t layer, int64_t s0, const torch::Tensor& probs)>;
// Receives each layer's output hidden states [B, S, H] (after DeepStack).
using LayerOutputObserver = std::function<void(int64_t layer, const torch::Tensor& hidden)>;
// Runs one decoder layer in place of `layer.forward(h, in, cache, hooks)`, to the same result.
using LayerRunner = std::function<torch::Tensor(Qwen3VLTextDecoderLayerImpl& layer, const torch::Tensor& h,
                                                const DecoderInputs& in, KVCache* cache, const ForwardHooks& hooks)>;

// Hooks into one forward pass, all optional: observers (the probes) and the layer runner (the
// trainer's activation checkpointing). None of them changes the result.
struct ForwardHooks {
  AttentionObserver attention;                 // last-position attention of every layer
  AttentionRowsObserver attention_rows;        // every position's attention (VisMem probe)
  std::map<int64_t, PvmProbe>* pvm = nullptr;  // filled per PVM layer for the last position
  LayerOutputObserver layer_output;            // logit lens
  LayerRunner layer_runner;
};

class Qwen3VLTextAttentionImpl : public torch::nn::Module {
 public:
  Qwen3VLTextAttentionImpl(const TextConfig& t, int64_t layer_idx);
  // x: [B, S, H] -> [B, S, H]
  torch::Tensor forward(const torch::Tensor& x, const DecoderInputs& in, KVCache* cache, const ForwardHooks& hooks);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};
  int64_t layer_idx, n_heads, n_kv, head_dim;
};
TORCH_MODULE(Qwen3VLTextAttention);

class Qwen3VLTextDecoderLayerImpl : public torch::nn::Module {
 public:
  Qwen3VLTextDecoderLayerImpl(const TextConfig& t, int64_t layer_idx);
  // x: [B, S, H] -> [B, S, H]; cache: null = attend within this call only.
  torch::Tensor forward(const torch::Tensor& x, const DecoderInputs& in, KVCache* cache, const ForwardHooks& hooks);
  Qwen3VLTextAttention self_attn{nullptr};
  GatedMLP mlp{nullptr};  // HF Qwen3VLTextMLP
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};  // HF Qwen3VLTextRMSNorm
  std::shared_ptr<PvmBlockImpl> pvm_block;  // registered as "pvm_block" in PVM layers
  int64_t layer_idx;
};
TORCH_MODULE(Qwen3VLTextDecoderLayer);

class Qwen3VLTextModelImpl : public torch::nn::Module {
 public:
  explicit Qwen3VLTextModelImpl(const TextConfig& t);
  // inputs_embeds [B, S, H] (image rows already scattered in) -> final-normed hidden [B, S, H].
  // With a cache, appends this chunk's keys to it (and the PVM memories at the prefill).
  torch::Tensor forward(const torch::Tensor& inputs_embeds, const DecoderInputs& in, KVCache* cache = nullptr,
                        const ForwardHooks& hooks = {});
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  std::vector<Qwen3VLTextDecoderLayer> layer_list;  // typed view of `layers`
  TextConfig cfg;
};
TORCH_MODULE(Qwen3VLTextModel);

// Attention core used by the decoder: q [B, Hq, S, D], k/v [B, Hkv, T, D] (GQA without copying
// k/v), causal with queries at absolute positions q_offset..q_offset+S-1. Without an observer it
// runs LibTorch's fused scaled_dot_product_attention (except f32 decode steps on the CPU, faster
// explicit). With one (a probe wants the probabilities), an explicit f32 softmax, long prefills in query chunks to bound memory, calling `observer` with
// the last query's probabilities [B, Hq, T].
// `rows_observer` (optional) gets every query row's probabilities, [B, Hq, n, T] from row s0.
// `key_bias` (optional, f32): [B or 1, >= T] added to every query's logits for keys 0..T-1, or
// [B or 1, S, T] per query and key.
// `key_allowed` (optional, [B, S, T] bool): per query and key, false hides the key (on top of causality).
torch::Tensor gqa_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t q_offset,
                            const torch::Tensor& key_valid, const std::function<void(const torch::Tensor&)>& observer,
                            const std::function<void(int64_t s0, const torch::Tensor&)>& rows_observer = {},
                            const torch::Tensor& key_bias = {}, const torch::Tensor& key_allowed = {});

// The answer-history window (issue 25's dilution regime): a token of the answer sees the whole prompt
// (text and image) but, of the answer, only itself and the `window` answer tokens before it. Query i
// of row b sees key j < i iff j < answer_start[b] or j >= i - window. Returns [B, S, S] bool for a
// fresh forward over S tokens (answer_start: [B] int64, S where a row has no answer). Training with
// it teaches a decoder to read the image at every distance without a long answer competing for the
// softmax; generating without it then dilutes the image by the answer's length.
torch::Tensor history_window_mask(const torch::Tensor& answer_start, int64_t S, int64_t window);

// The length-matched image restore of generation (GenerationRequest::visual_attention_restore K) as a
// per-query key bias for a fresh forward: query i (which sees n = i + 1 keys) gets K log(n / P) on
// the image keys, P = answer_start[b] (the prompt's length), 0 for the prompt's own queries.
// image_keys [B, S] bool. Returns [B, S, S] f32. Training with it holds the image's share of
// attention constant over the answer; generating without it then dilutes only the image.
torch::Tensor visual_restore_bias(const torch::Tensor& image_keys, const torch::Tensor& answer_start, double k);
// Which path gqa_attention takes without an observer: Auto (as above), or forced (tests and
// benchmarks compare the two).
enum class AttentionPath { Auto, Explicit, Fused };
void set_attention_path(AttentionPath p);
AttentionPath attention_path();

}  // namespace pvm
