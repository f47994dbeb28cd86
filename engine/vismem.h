// VisMem (Yu et al., "Latent Vision Memory Unlocks Potential of Vision-Language Models", CVPR 2026,
// arXiv 2511.11007; docs/VISMEM.md): latent visual memories formed on demand during decoding and
// inserted into the token stream. This file holds the whole concept for Qwen3-VL:
//
//   - four tokens beyond the checkpoint's vocabulary, ids vocab_size + {0: short start <ms_I>,
//     1: short end <ms_E>, 2: long start <ml_I>, 3: long end <ml_E>}; the start rows begin as a
//     separator's embedding plus small noise, the end tokens are structural (never sampled);
//   - the query constructor: a small pre-norm transformer encoder over [states, K learnable queries],
//     masked so the state rows never attend to the queries (they are read, not changed); its last K
//     outputs are the memory query Q;
//   - two memory formers, each a LoRA: the short-term one on every vision-tower block, over
//     [the images' patch rows, Q (projected to the vision width), 4 N_s learnable memory rows]; its
//     last 4 N_s outputs pass the merger (the projector: 2x2 -> 1) into N_s rows of the language
//     space; the long-term one on the last `long_layers` decoder layers, over [the states, Q, N_l
//     learnable memory rows]; its last N_l outputs, after the final norm, are the memory;
//   - insertion: when a sequence emits a start token, the chunk [start, N latent rows, end] is fed
//     in one forward (the memory is formed from the states of every position before the start
//     token), then decoding resumes. In a batch, sequences that do not insert feed their token
//     right-aligned in the same chunk, the padding slots masked out of every later attention, so
//     each sequence sees exactly its own history (tests: cached generation = full recompute).
//
// "States" are the residual stream entering the first long-former layer (layer L - long_layers) at
// the prompt's image positions and at the text positions since the last insertion (the prompt's
// text for the first one), capped at max_text_rows. Weights are an adapter (adapter_config.json
// with adapter_type "vismem" + adapter.safetensors with the module's names, "vismem.*").
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/base/config.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/nn.h"
#include "engine/torch_pch.h"

namespace pvm {

enum VismemToken : int64_t { kShortStart = 0, kShortEnd = 1, kLongStart = 2, kLongEnd = 3 };
constexpr int64_t kVismemTokens = 4;
// "<ms_I>", "<ms_E>", "<ml_I>", "<ml_E>" (the public code's names).
const char* vismem_token_name(int64_t which);
inline int64_t vismem_token_id(const ModelConfig& c, int64_t which) { return c.text.vocab_size + which; }
// Which VisMem token `id` is (0..3), or -1.
inline int64_t vismem_token_of(const ModelConfig& c, int64_t id) {
  int64_t w = id - c.text.vocab_size;
  return w >= 0 && w < kVismemTokens ? w : -1;
}

struct VismemConfig {
  int64_t query_len = 8;    // K (paper: 8)
  int64_t short_len = 8;    // N_s (paper: 8)
  int64_t long_len = 16;    // N_l (paper: 16)
  int64_t qc_layers = 2, qc_heads = 8, qc_ff_mult = 4;  // query constructor (the public code's)
  int64_t lora_rank = 16;
  double lora_alpha = 32;
  int64_t long_layers = 4;  // the long-term former's LoRA sits on the last long_layers decoder layers
  int64_t max_text_rows = 1024;  // text states a memory reads at most (the most recent)
  std::vector<int64_t> separator_ids;  // stage-1 invocations follow these tokens
  int64_t init_token_id = -1;          // the separator whose embedding seeds the start tokens
  double init_noise = 1e-3;            // std of the noise added to it
  // Throws naming `where` and the field.
  void validate(const ModelConfig& m, const std::string& where) const;
};

// LoRA update of one Linear: scale * B (A x), A [r, in] N(0, 1/r), B [out, r] zero (the former
// starts as the plain backbone). Set as the Linear's delta only while its former runs.
class LoraLinearImpl : public torch::nn::Module, public LinearDelta {
 public:
  LoraLinearImpl(int64_t in, int64_t out, int64_t rank, double alpha);
  torch::Tensor operator()(const torch::Tensor& x) override;
  torch::Tensor lora_A, lora_B;
  double scale;
};

// One pre-norm encoder layer (torch.nn.TransformerEncoderLayer with norm_first, GELU): x [B, T, H],
// allowed [B or 1, 1, T, T] bool (true = may attend).
class QueryEncoderLayerImpl : public torch::nn::Module {
 public:
  QueryEncoderLayerImpl(int64_t d, int64_t heads, int64_t ff);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& allowed);
  LayerNorm norm1{nullptr}, norm2{nullptr};
  Linear in_proj{nullptr}, out_proj{nullptr}, linear1{nullptr}, linear2{nullptr};
  int64_t heads;
};
TORCH_MODULE(QueryEncoderLayer);

class QueryConstructorImpl : public torch::nn::Module {
 public:
  QueryConstructorImpl(int64_t d, const VismemConfig& c);
  // rows [B, R, H] (R may be 0), valid [B, R] bool or undefined -> every output [B, R + K, H]
  // (final LayerNorm applied); the state rows attend only to state rows, the queries to all.
  torch::Tensor encode(const torch::Tensor& rows, const torch::Tensor& valid);
  // The memory query Q: the last K outputs, [B, K, H].
  torch::Tensor forward(const torch::Tensor& rows, const torch::Tensor& valid = {});
  torch::Tensor queries;  // [K, H]
  torch::nn::ModuleList layers{nullptr};
  LayerNorm norm{nullptr};
  std::vector<QueryEncoderLayer> layer_list;
};
TORCH_MODULE(QueryConstructor);

// The LoRA sites of a former: the backbone Linear and its update.
struct LoraSite {
  LinearImpl* target;
  std::shared_ptr<LoraLinearImpl> lora;
};

class ShortFormerImpl : public torch::nn::Module {
 public:
  ShortFormerImpl(Qwen3VLForConditionalGenerationImpl& m, const VismemConfig& c);
  Linear query_proj{nullptr};  // H -> Dv: Q into the vision tower's width
  torch::Tensor memory_tokens;  // [4 N_s, Dv]
  std::vector<LoraSite> sites;  // qkv, proj, linear_fc1, linear_fc2 of every block
};
TORCH_MODULE(ShortFormer);

class LongFormerImpl : public torch::nn::Module {
 public:
  LongFormerImpl(Qwen3VLForConditionalGenerationImpl& m, const VismemConfig& c);
  torch::Tensor memory_tokens;  // [N_l, H]
  std::vector<LoraSite> sites;  // q/k/v/o_proj, gate/up/down_proj of the last long_layers layers
};
TORCH_MODULE(LongFormer);

// What one memory reads, for one sequence (tap states = the residual stream entering layer tap_layer()).
struct MemorySource {
  torch::Tensor visual;      // [Nv, H] tap states at the prompt's image positions (may be empty)
  torch::Tensor visual_pos;  // [3, Nv] their MRoPE positions
  torch::Tensor text;        // [R, H] tap states of the text since the last insertion
  torch::Tensor text_pos;    // [R] their positions (text: the three streams are equal)
  torch::Tensor patches;     // [L, Dv] vision-tower input rows (patch + position embedding)
  torch::Tensor patch_cos, patch_sin;  // [L, hd_v] their 2-D RoPE
};

class VismemImpl : public torch::nn::Module {
 public:
  VismemImpl(Qwen3VLForConditionalGenerationImpl& m, const VismemConfig& c);
  // Memory rows [N, H] in the input-embedding space (model dtype): N_s (short) or N_l (long).
  torch::Tensor form(Qwen3VLForConditionalGenerationImpl& m, const MemorySource& src, bool long_term);
  // The vision tower's input rows for the short former: patch embedding + position embedding of
  // pixel_values, with their 2-D RoPE (what the tower's first block reads).
  void vision_input(Qwen3VLForConditionalGenerationImpl& m, const torch::Tensor& pixel_values,
                    const std::vector<std::array<int64_t, 3>>& grids, MemorySource& src);
  int64_t tap_layer() const { return num_layers - cfg.long_layers; }
  int64_t rows(bool long_term) const { return long_term ? cfg.long_len : cfg.short_len; }

  VismemConfig cfg;
  int64_t num_layers;
  QueryConstructor query_constructor{nullptr};
  ShortFormer short_former{nullptr};
  LongFormer long_former{nullptr};
  torch::Tensor token_embed;  // [4, H] input rows of the four tokens
  torch::Tensor token_head;   // [4, H] output rows (untied models only; tied: token_embed)
};
TORCH_MODULE(Vismem);

// The adapter attached to `m` (registered as its submodule "vismem"), or null.
VismemImpl* vismem_of(Qwen3VLForConditionalGenerationImpl& m);
// Attach a fresh adapter (replacing one): the constructor and formers random (matrices N(0, 0.02),
// LoRA A N(0, 1/r), LoRA B 0, norms 1), the start tokens = the embedding of c.init_token_id + N(0,
// init_noise), the end tokens the same without the noise (plain markers), all from `seed`.
void attach_vismem(Qwen3VLForConditionalGenerationImpl& m, const VismemConfig& c, uint64_t seed = 0);
void detach_vismem(Qwen3VLForConditionalGenerationImpl& m);
// adapter.safetensors ("vismem.*") + adapter_config.json {"adapter_type": "vismem",
// "vismem_adapter_format", the VismemConfig fields, "base_hidden_size", "base_num_hidden_layers",
// "base_vocab_size"}.
void save_vismem_adapter(Qwen3VLForConditionalGenerationImpl& m, const std::string& dir);
// Strict load; an adapter of another type (PVM, PEFT) is refused naming the file. Errors name the file.
void load_vismem_adapter(Qwen3VLForConditionalGenerationImpl& m, const std::string& dir);

// Generation with invocations (GenerationRequest::vismem.enabled; generate() calls it).
GenerationResult generate_with_vismem(Qwen3VLForConditionalGeneration& m, const GenerationRequest& req);

// Teacher forcing: prompt + completion (as generation returns it, start and end tokens included)
// through the model without a KV cache, every memory formed from the sequence's own states (one
// forward per memory over the prefix before its start token, then one over everything). The
// expanded sequence holds N latent rows after each start token.
struct VismemForward {
  torch::Tensor hidden;  // [1, S, H] final-normed, S = expanded length
  torch::Tensor logits;  // [1, S, V + 4] f32 when all_logits, else undefined
  std::vector<int64_t> ids;                 // expanded ids (latent rows hold the start token's id)
  std::vector<int64_t> completion_pos;      // expanded position of each completion token
  std::vector<MemoryInsertion> insertions;  // first_slot = expanded position of each start token
};
VismemForward vismem_forward(Qwen3VLForConditionalGeneration& m, const std::vector<int64_t>& prompt,
                             const torch::Tensor& pixel_values, const std::vector<std::array<int64_t, 3>>& grids,
                             const std::vector<int64_t>& completion, bool all_logits = true, bool pvm = true);

}  // namespace pvm
