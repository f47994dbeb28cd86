#include "engine/model.h"

#include "engine/base/error.h"
#include "engine/pvm.h"

namespace pvm {

Qwen3VLModelImpl::Qwen3VLModelImpl(const ModelConfig& c) {
  visual = register_module("visual", Qwen3VLVisionModel(c.vision));
  language_model = register_module("language_model", Qwen3VLTextModel(c.text));
}

Qwen3VLForConditionalGenerationImpl::Qwen3VLForConditionalGenerationImpl(const ModelConfig& c) : cfg(c) {
  model = register_module("model", Qwen3VLModel(c));
  // PVM blocks of a full checkpoint (official names: layers.{L}.pvm_block.*)
  for (auto l : c.text.pvm_layers) {
    auto& layer = model->language_model->layer_list[l];
    layer->pvm_block = layer->register_module("pvm_block", PvmBlock(c, l).ptr());
  }
  if (!c.tie_word_embeddings)
    lm_head = register_module("lm_head", Linear(c.text.hidden_size, c.text.vocab_size, false));
}

torch::Tensor Qwen3VLForConditionalGenerationImpl::lm_head_weight() {
  return lm_head ? lm_head->weight : model->language_model->embed_tokens->weight;
}

torch::ScalarType Qwen3VLForConditionalGenerationImpl::dtype() {
  return model->language_model->embed_tokens->weight.scalar_type();
}
torch::Device Qwen3VLForConditionalGenerationImpl::device() {
  return model->language_model->embed_tokens->weight.device();
}

torch::Tensor Qwen3VLForConditionalGenerationImpl::embed(const torch::Tensor& ids, const torch::Tensor& image_embeds, bool strict) {
  const int64_t V = cfg.text.vocab_size;
  torch::Tensor e;
  if (extra_embed.defined() && (ids >= V).any().item<bool>()) {
    // ids beyond the vocabulary take the extra rows (VisMem's tokens), the others the table
    auto extra = ids >= V;
    e = model->language_model->embed_tokens(ids.masked_fill(extra, 0));
    auto rows = extra_embed.index_select(0, (ids - V).clamp(0, extra_embed.size(0) - 1).flatten()).view_as(e);
    e = torch::where(extra.unsqueeze(-1), rows.to(e.scalar_type()), e);
  } else {
    e = model->language_model->embed_tokens(ids);  // [B, S, H]
  }
  // A continuation step without pixels (decode): HF embeds a sampled <|image_pad|> as plain text.
  if (!strict && !image_embeds.defined()) return e;
  auto mask = ids == cfg.image_token_id;
  int64_t n = mask.sum().item<int64_t>();
  int64_t have = image_embeds.defined() ? image_embeds.size(0) : 0;
  if (n != have)
    throw Error("image features and image tokens do not match: " + std::to_string(n) + " <|image_pad|> tokens, " +
                std::to_string(have) + " image feature rows");
  if (n == 0) return e;
  // i-th image token (row-major over batch, sequence) gets the i-th merged vision row.
  return e.masked_scatter(mask.unsqueeze(-1), image_embeds.to(e.scalar_type()));
}

ForwardOutput Qwen3VLForConditionalGenerationImpl::forward(const ForwardInput& in, KVCache* cache, const ForwardHooks& hooks) {
  ForwardOutput out;
  auto dev = device();
  auto ids = in.input_ids.to(dev);
  DecoderInputs din;
  din.key_valid = in.key_valid;
  din.key_bias = in.key_bias;
  din.key_allowed = in.key_allowed;
  din.pvm.enabled = in.pvm;
  torch::Tensor image_embeds;
  if (in.pixel_values.defined() && in.pixel_values.numel() > 0) {
    std::vector<int64_t> flat;
    for (auto& g : in.grids) flat.insert(flat.end(), g.begin(), g.end());
    auto grid = torch::tensor(flat, torch::kLong).view({-1, 3});
    auto vis = model->visual->forward(in.pixel_values.to(dev), grid);
    image_embeds = vis.merged;
    din.deepstack = vis.deepstack;
    din.visual_mask = ids == cfg.image_token_id;
  }
  auto x = embed(ids, image_embeds, /*strict=*/!in.position_ids.defined());
  if (in.inserted_mask.defined() && in.inserted_embeds.defined() && in.inserted_embeds.size(0) > 0)
    x = x.masked_scatter(in.inserted_mask.to(dev).unsqueeze(-1), in.inserted_embeds.to(x.scalar_type()));
  din.pvm.image_embeds = image_embeds;
  torch::Tensor pos = in.position_ids;
  if (!pos.defined()) {
    // Fresh prompt (no cache): positions from ids and grids.
    auto cpu_ids = ids.to(torch::kCPU).contiguous();
    std::vector<std::vector<int64_t>> rows;
    for (int64_t b = 0; b < cpu_ids.size(0); ++b) {
      auto r = cpu_ids[b];
      rows.emplace_back(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
    }
    auto ri = rope_index(rows, in.grids, cfg);
    pos = ri.position_ids;
    out.rope_deltas = ri.rope_deltas;
  }
  din.rope = mrope_cos_sin(pos, cfg.text, x.scalar_type(), dev);
  auto h = model->language_model->forward(x, din, cache, hooks);
  out.hidden = h;
  auto last = in.all_logits ? h : h.narrow(1, h.size(1) - 1, 1);
  out.logits = linear_rows(last, lm_head_weight()).to(torch::kFloat);
  if (in.extra_vocab && extra_embed.defined()) {
    auto head = extra_head.defined() ? extra_head : extra_embed;
    out.logits = torch::cat({out.logits, linear_rows(last, head.to(last.scalar_type())).to(torch::kFloat)}, -1);
  }
  out.image_embeds = image_embeds;
  return out;
}

void init_random_weights(Qwen3VLForConditionalGeneration& m, uint64_t seed, double std) {
  init_weights(*m, seed, std);
}

}  // namespace pvm
