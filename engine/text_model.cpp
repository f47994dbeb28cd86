#include "engine/text_model.h"

#include <atomic>

#include <cmath>

#include "engine/base/error.h"

namespace pvm {

namespace F = torch::nn::functional;

void KVCache::allocate(const TextConfig& t, int64_t batch, int64_t cap, torch::ScalarType dtype, torch::Device dev) {
  k.clear();
  v.clear();
  auto opt = torch::TensorOptions().dtype(dtype).device(dev);
  for (int64_t l = 0; l < t.num_hidden_layers; ++l) {
    k.push_back(torch::empty({batch, t.num_key_value_heads, cap, t.head_dim}, opt));
    v.push_back(torch::empty({batch, t.num_key_value_heads, cap, t.head_dim}, opt));
  }
  length = 0;
  capacity = cap;
}

void KVCache::repeat_batch(int64_t n) {
  for (auto* vec : {&k, &v})
    for (auto& t : *vec) t = t.repeat_interleave(n, 0).contiguous();
  pvm.repeat_batch(n);
}

Qwen3VLTextAttentionImpl::Qwen3VLTextAttentionImpl(const TextConfig& t, int64_t idx)
    : layer_idx(idx), n_heads(t.num_attention_heads), n_kv(t.num_key_value_heads), head_dim(t.head_dim) {
  auto lin = [&](int64_t i, int64_t o) { return Linear(i, o, false); };
  q_proj = register_module("q_proj", lin(t.hidden_size, n_heads * head_dim));
  k_proj = register_module("k_proj", lin(t.hidden_size, n_kv * head_dim));
  v_proj = register_module("v_proj", lin(t.hidden_size, n_kv * head_dim));
  o_proj = register_module("o_proj", lin(n_heads * head_dim, t.hidden_size));
  q_norm = register_module("q_norm", RMSNorm(head_dim, t.rms_norm_eps));
  k_norm = register_module("k_norm", RMSNorm(head_dim, t.rms_norm_eps));
}

static std::atomic<AttentionPath> g_attention_path{AttentionPath::Auto};
void set_attention_path(AttentionPath p) { g_attention_path = p; }
AttentionPath attention_path() { return g_attention_path; }

// No probe needs the probabilities: LibTorch's fused scaled_dot_product_attention (flash kernel on
// CPU and CUDA, f32 accumulation in bf16) with grouped kv heads, as transformers' sdpa path.
static torch::Tensor sdpa_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    int64_t q_offset, const torch::Tensor& key_valid, const torch::Tensor& key_bias,
                                    const torch::Tensor& key_allowed) {
  const int64_t B = q.size(0), S = q.size(2), T = k.size(2);
  const bool gqa = q.size(1) != k.size(1);
  // A decode step (last query, every key visible) and a fresh prefill (S == T) need no mask.
  const bool every_key = !key_valid.defined() && !key_allowed.defined() && q_offset + S == T && S == 1;
  if (!key_bias.defined() && !key_valid.defined() && !key_allowed.defined() && q_offset + S == T &&
      (S == 1 || q_offset == 0))
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/S > 1, {}, gqa);
  torch::Tensor allowed;  // boolean (true = attend): key j visible to query i iff j <= q_offset + i
  if (!every_key) {
    auto opt = torch::TensorOptions().dtype(torch::kLong).device(q.device());
    auto qi = torch::arange(q_offset, q_offset + S, opt);
    allowed = (torch::arange(T, opt).view({1, T}) <= qi.view({S, 1})).view({1, 1, S, T});
    if (key_valid.defined()) allowed = allowed & key_valid.view({B, 1, 1, T});
    if (key_allowed.defined()) allowed = allowed & key_allowed.to(q.device()).view({B, 1, S, T});
  }
  if (!key_bias.defined()) return at::scaled_dot_product_attention(q, k, v, allowed, 0.0, false, {}, gqa);
  // an additive float mask: the bias (per key, or per query and key), -inf where a key is not visible
  auto bias = key_bias.dim() == 3 ? key_bias.to(q.scalar_type()).view({key_bias.size(0), 1, S, T})
                                  : key_bias.narrow(1, 0, T).to(q.scalar_type()).view({key_bias.size(0), 1, 1, T});
  if (allowed.defined()) bias = bias.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  return at::scaled_dot_product_attention(q, k, v, bias, 0.0, false, {}, gqa);
}

torch::Tensor gqa_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t q_offset,
                            const torch::Tensor& key_valid, const std::function<void(const torch::Tensor&)>& observer,
                            const std::function<void(int64_t s0, const torch::Tensor&)>& rows_observer,
                            const torch::Tensor& key_bias, const torch::Tensor& key_allowed) {
  // Fused SDPA unless a probe reads the probabilities, or for an f32 decode step on the CPU, where
  // the two plain matmuls below are faster (0.65x SDPA's time at 4k context; bf16 and prefills are
  // faster fused: experiments/bench/RESULTS_platform.md).
  const bool cpu_f32_decode = q.size(2) == 1 && q.device().is_cpu() && q.scalar_type() == torch::kFloat;
  const AttentionPath path = attention_path();
  const bool fused = path == AttentionPath::Fused || (path == AttentionPath::Auto && !cpu_f32_decode);
  if (key_bias.defined() && !(key_bias.dim() == 2 && key_bias.size(1) >= k.size(2)) &&
      !(key_bias.dim() == 3 && key_bias.size(1) == q.size(2) && key_bias.size(2) == k.size(2)))
    throw Error("attention key bias: expected [B or 1, >= " + std::to_string(k.size(2)) + "] or [B or 1, " +
                std::to_string(q.size(2)) + ", " + std::to_string(k.size(2)) + "]");
  if (key_allowed.defined() && (key_allowed.dim() != 3 || key_allowed.size(0) != q.size(0) ||
                                key_allowed.size(1) != q.size(2) || key_allowed.size(2) != k.size(2)))
    throw Error("attention key mask: expected [" + std::to_string(q.size(0)) + ", " + std::to_string(q.size(2)) + ", " +
                std::to_string(k.size(2)) + "] bool");
  if (!observer && !rows_observer && fused) return sdpa_attention(q, k, v, q_offset, key_valid, key_bias, key_allowed);
  const int64_t B = q.size(0), Hq = q.size(1), S = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), T = k.size(2), G = Hq / Hkv;
  const double scale = 1.0 / std::sqrt((double)D);
  auto dt = q.scalar_type();
  // [B, Hkv, G, S, D]: query heads of one kv group side by side, so k/v are never copied.
  // Query heads of one kv group stacked as rows, [B, Hkv, G*n, D] x [B, Hkv, D, T]: a plain batched
  // matmul (a broadcast [B, Hkv, G, n, D] x [B, Hkv, 1, D, T] would copy k G times).
  auto qg = q.view({B, Hkv, G, S, D});
  auto kt = k.transpose(-2, -1);  // [B, Hkv, D, T]
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(S, (int64_t)(64 << 20) / std::max<int64_t>(1, B * Hq * T)));
  std::vector<torch::Tensor> outs;
  for (int64_t s0 = 0; s0 < S; s0 += chunk) {
    const int64_t n = std::min(chunk, S - s0);
    auto qc = qg.narrow(3, s0, n).reshape({B, Hkv, G * n, D});
    auto scores = (torch::matmul(qc, kt).to(torch::kFloat) * scale).view({B, Hkv, G, n, T});
    // A single decode query at the end sees every key: no mask to build (the hot path).
    if (!(n == 1 && q_offset + s0 >= T - 1 && !key_valid.defined() && !key_allowed.defined())) {
      // causal: key j visible to query i iff j <= q_offset + s0 + i
      auto opt = torch::TensorOptions().dtype(torch::kLong).device(q.device());
      auto qi = torch::arange(q_offset + s0, q_offset + s0 + n, opt);
      auto blocked = torch::arange(T, opt).view({1, T}) > qi.view({n, 1});  // [n, T]
      if (key_valid.defined()) blocked = blocked.view({1, 1, 1, n, T}) | key_valid.logical_not().view({B, 1, 1, 1, T});
      if (key_allowed.defined())
        blocked = blocked.view({-1, 1, 1, n, T}) | key_allowed.to(q.device()).narrow(1, s0, n).logical_not().view({B, 1, 1, n, T});
      scores.masked_fill_(blocked, -std::numeric_limits<float>::infinity());
    }
    if (key_bias.defined())
      scores.add_(key_bias.dim() == 3 ? key_bias.narrow(1, s0, n).to(torch::kFloat).view({key_bias.size(0), 1, 1, n, T})
                                      : key_bias.narrow(1, 0, T).to(torch::kFloat).view({key_bias.size(0), 1, 1, 1, T}));
    auto probs = torch::softmax(scores, -1);
    if (observer && s0 + n == S) observer(probs.select(3, n - 1).reshape({B, Hq, T}));
    if (rows_observer) rows_observer(s0, probs.view({B, Hq, n, T}));
    outs.push_back(torch::matmul(probs.to(dt).view({B, Hkv, G * n, T}), v).view({B, Hkv, G, n, D}));
  }
  auto out = outs.size() == 1 ? outs[0] : torch::cat(outs, 3);
  return out.view({B, Hq, S, D});
}

torch::Tensor Qwen3VLTextAttentionImpl::forward(const torch::Tensor& x, const DecoderInputs& in, KVCache* cache,
                                                const ForwardHooks& hooks) {
  const int64_t B = x.size(0), S = x.size(1);
  auto q = q_norm(q_proj(x).view({B, S, n_heads, head_dim})).transpose(1, 2);  // [B, Hq, S, D]
  auto k = k_norm(k_proj(x).view({B, S, n_kv, head_dim})).transpose(1, 2);     // [B, Hkv, S, D]
  auto v = v_proj(x).view({B, S, n_kv, head_dim}).transpose(1, 2);
  q = apply_rope(q, in.rope.cos, in.rope.sin);
  k = apply_rope(k, in.rope.cos, in.rope.sin);
  int64_t offset = 0;
  torch::Tensor K = k, V = v;
  if (cache) {
    auto& c = *cache;
    offset = c.length;
    if (offset + S > c.capacity)
      throw Error("KV cache full: " + std::to_string(offset + S) + " tokens exceed the context of " +
                  std::to_string(c.capacity));
    c.k[layer_idx].narrow(2, offset, S).copy_(k);
    c.v[layer_idx].narrow(2, offset, S).copy_(v);
    K = c.k[layer_idx].narrow(2, 0, offset + S);
    V = c.v[layer_idx].narrow(2, 0, offset + S);
  }
  std::function<void(const torch::Tensor&)> obs;
  if (hooks.attention) obs = [&](const torch::Tensor& p) { hooks.attention(layer_idx, p); };
  std::function<void(int64_t, const torch::Tensor&)> rows;
  if (hooks.attention_rows) rows = [&](int64_t s0, const torch::Tensor& p) { hooks.attention_rows(layer_idx, s0, p); };
  auto o = gqa_attention(q, K, V, offset, in.key_valid, obs, rows, in.key_bias, in.key_allowed);  // [B, Hq, S, D]
  return o_proj(o.transpose(1, 2).reshape({B, S, n_heads * head_dim}));
}

torch::Tensor history_window_mask(const torch::Tensor& answer_start, int64_t S, int64_t window) {
  if (window < 0) throw Error("history window must be >= 0, got " + std::to_string(window));
  if (answer_start.dim() != 1) throw Error("history window: answer_start must be [B]");
  auto opt = torch::TensorOptions().dtype(torch::kLong).device(answer_start.device());
  auto i = torch::arange(S, opt).view({1, S, 1}), j = torch::arange(S, opt).view({1, 1, S});
  auto a = answer_start.to(torch::kLong).view({-1, 1, 1});
  return (j < a) | (j >= i - window);  // [B, S, S]; causality is the attention's own
}

torch::Tensor visual_restore_bias(const torch::Tensor& image_keys, const torch::Tensor& answer_start, double k) {
  if (image_keys.dim() != 2 || answer_start.dim() != 1 || answer_start.size(0) != image_keys.size(0))
    throw Error("visual restore bias: expected image_keys [B, S] and answer_start [B]");
  const int64_t S = image_keys.size(1);
  auto opt = torch::TensorOptions().dtype(torch::kFloat).device(image_keys.device());
  auto n = torch::arange(1, S + 1, opt).view({1, S, 1});                   // keys seen by query i
  auto p = answer_start.to(opt.dtype()).clamp_min(1).view({-1, 1, 1});    // the prompt's length P
  auto lb = torch::log(torch::maximum(n, p) / p) * k;                     // [B, S, 1]; 0 on the prompt
  return lb * image_keys.to(opt.dtype()).view({-1, 1, S});                // [B, S, S]
}

Qwen3VLTextDecoderLayerImpl::Qwen3VLTextDecoderLayerImpl(const TextConfig& t, int64_t idx) : layer_idx(idx) {
  self_attn = register_module("self_attn", Qwen3VLTextAttention(t, idx));
  mlp = register_module("mlp", GatedMLP(t.hidden_size, t.intermediate_size));
  input_layernorm = register_module("input_layernorm", RMSNorm(t.hidden_size, t.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(t.hidden_size, t.rms_norm_eps));
}

torch::Tensor Qwen3VLTextDecoderLayerImpl::forward(const torch::Tensor& x, const DecoderInputs& in, KVCache* cache,
                                                   const ForwardHooks& hooks) {
  auto h = x + self_attn->forward(input_layernorm(x), in, cache, hooks);
  auto out = h + mlp(post_attention_layernorm(h));
  if (pvm_block && in.pvm.enabled) {
    auto read = pvm_block->forward(h, in.visual_mask, in.pvm, cache ? &cache->pvm : nullptr, hooks.pvm);
    if (read.defined()) out = out + read;  // undefined: no visual memory (text-only prompt), no PVM
  }
  return out;
}

Qwen3VLTextModelImpl::Qwen3VLTextModelImpl(const TextConfig& t) : cfg(t) {
  embed_tokens = register_module("embed_tokens", Embedding(t.vocab_size, t.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t l = 0; l < t.num_hidden_layers; ++l) {
    layer_list.push_back(Qwen3VLTextDecoderLayer(t, l));
    layers->push_back(layer_list.back());
  }
  norm = register_module("norm", RMSNorm(t.hidden_size, t.rms_norm_eps));
}

torch::Tensor Qwen3VLTextModelImpl::forward(const torch::Tensor& inputs_embeds, const DecoderInputs& in, KVCache* cache,
                                            const ForwardHooks& hooks) {
  auto h = inputs_embeds;
  const bool inject = in.visual_mask.defined() && !in.deepstack.empty();
  for (size_t l = 0; l < layer_list.size(); ++l) {
    h = hooks.layer_runner ? hooks.layer_runner(*layer_list[l], h, in, cache, hooks)
                           : layer_list[l]->forward(h, in, cache, hooks);
    // DeepStack: ViT features of tap l added at the visual positions after layer l.
    if (inject && l < in.deepstack.size()) {
      h = h.clone();
      auto idx = in.visual_mask.flatten().nonzero().squeeze(1);
      auto flat = h.view({-1, h.size(-1)});
      flat.index_put_({idx}, flat.index_select(0, idx) + in.deepstack[l].to(h.scalar_type()));
    }
    if (hooks.layer_output) hooks.layer_output((int64_t)l, h);
  }
  if (cache) cache->length += inputs_embeds.size(1);
  return norm(h);
}

}  // namespace pvm
