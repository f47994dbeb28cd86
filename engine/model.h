// Qwen3VLForConditionalGeneration: model.visual (vision tower), model.language_model (decoder),
// lm_head (absent when tied to the embedding). Module names equal HF checkpoint names.
#pragma once
#include <array>
#include <memory>
#include <vector>

#include "engine/base/config.h"
#include "engine/text_model.h"
#include "engine/torch_pch.h"
#include "engine/vision.h"

namespace pvm {

class Qwen3VLModelImpl : public torch::nn::Module {
 public:
  explicit Qwen3VLModelImpl(const ModelConfig& c);
  Qwen3VLVisionModel visual{nullptr};
  Qwen3VLTextModel language_model{nullptr};
};
TORCH_MODULE(Qwen3VLModel);

// The inputs of one forward call over a chunk of tokens (prefill or decode step). The cache and the
// hooks are the other two parts of the forward contract (engine/text_model.h).
struct ForwardInput {
  torch::Tensor input_ids;                   // [B, S] int64
  torch::Tensor pixel_values;                // [L, C*T*P*P] f32, images of this chunk (optional)
  std::vector<std::array<int64_t, 3>> grids;  // (t, h, w) per image, in order of appearance
  torch::Tensor position_ids;                // [3, B, S]; computed from ids and grids when undefined
  torch::Tensor key_valid;                   // optional [B, T] bool over all keys (padding)
  // Optional [B or 1, >= T] f32 added to every query's attention logits for the keys 0..T-1, or
  // [B or 1, S, T] per query (training with visual_restore_bias) (an
  // intervention: log(s) on the image keys multiplies their attention weight by s before the
  // softmax renormalises; engine/generate.h visual_attention_scale). Undefined: none.
  torch::Tensor key_bias;
  // Optional [B, S, T] bool: false hides key j from query i on top of causality (the training side
  // of the answer-history window, engine/text_model.h history_window_mask). Undefined: none.
  torch::Tensor key_allowed;
  bool pvm = true;                           // run the PVM blocks, if any (false: the baseline)
  bool all_logits = false;                   // false: logits of the last position only (generation)
  // VisMem (engine/vismem.h): rows given as embeddings instead of ids (the latent memory), and the
  // tokens beyond the checkpoint's vocabulary (ids vocab_size + i embed from, and the logits gain
  // columns for, the model's extra token rows). Both off by default: other callers see nothing.
  torch::Tensor inserted_mask;    // [B, S] bool: positions whose input embedding is given
  torch::Tensor inserted_embeds;  // [N, H], row-major over inserted_mask
  bool extra_vocab = false;
};

struct ForwardOutput {
  torch::Tensor logits;      // [B, S or 1, V] f32
  torch::Tensor hidden;      // [B, S, H] final-normed hidden states
  torch::Tensor image_embeds;  // [Nv, H] merger output (what PVM reads), if images were given
  std::vector<int64_t> rope_deltas;
};

class Qwen3VLForConditionalGenerationImpl : public torch::nn::Module {
 public:
  explicit Qwen3VLForConditionalGenerationImpl(const ModelConfig& c);
  // cache: null = attend within this call only; with one, the chunk continues what it holds.
  ForwardOutput forward(const ForwardInput& in, KVCache* cache = nullptr, const ForwardHooks& hooks = {});
  // Embedding lookup with image rows scattered into the <|image_pad|> positions.
  // strict: every <|image_pad|> needs an image feature row (a fresh prompt); else (decode) they embed as text.
  torch::Tensor embed(const torch::Tensor& input_ids, const torch::Tensor& image_embeds, bool strict = true);
  torch::Tensor lm_head_weight();  // tied or not
  // Token rows beyond the checkpoint's vocabulary, id vocab_size + i (VisMem's four tokens; owned
  // by the adapter, which sets them): input embeddings [n, H] and output rows [n, H] (undefined =
  // tied to extra_embed). Used only when ForwardInput::extra_vocab.
  torch::Tensor extra_embed, extra_head;
  const ModelConfig& config() const { return cfg; }
  torch::ScalarType dtype();
  torch::Device device();

  Qwen3VLModel model{nullptr};
  Linear lm_head{nullptr};  // null when tie_word_embeddings
  ModelConfig cfg;
};
TORCH_MODULE(Qwen3VLForConditionalGeneration);

// Deterministic random init of every weight (engine/nn.h init_weights: N(0, std) for matrices, 1 for
// norms, 0 biases) from one generator seeded with `seed`.
void init_random_weights(Qwen3VLForConditionalGeneration& m, uint64_t seed, double std = 0.02);

}  // namespace pvm
