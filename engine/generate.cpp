#include "engine/generate.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "engine/base/error.h"
#include "engine/vismem.h"

namespace pvm {

double GenerationResult::decode_tokens_per_s() const {
  int64_t n = 0;
  for (auto& t : tokens) n += t.size();
  // the first token of each sequence comes from the prefill
  n -= (int64_t)tokens.size();
  return decode_ms > 0 && n > 0 ? n * 1000.0 / decode_ms : 0;
}

static GenerationResult generate_impl(Qwen3VLForConditionalGeneration& m, const GenerationRequest& req) {
  using clock = std::chrono::steady_clock;
  torch::NoGradGuard ng;
  const auto& cfg = m->config();
  req.sampling.validate();
  if (req.prompt_ids.empty()) throw Error("empty prompt");
  if (req.max_new_tokens < 1) throw Error("--max-new-tokens must be at least 1");
  if (req.num_sequences < 1) throw Error("number of sequences must be at least 1");
  const int64_t P = req.prompt_ids.size(), G = req.num_sequences;
  int64_t cap = req.max_context > 0 ? req.max_context : P + req.max_new_tokens;
  if (P >= cap)
    throw Error("prompt of " + std::to_string(P) + " tokens does not fit the context of " + std::to_string(cap) +
                " tokens");
  if (cap > cfg.text.max_position_embeddings)
    throw Error("context of " + std::to_string(cap) + " tokens exceeds the model's max_position_embeddings (" +
                std::to_string(cfg.text.max_position_embeddings) + ")");
  for (auto id : req.prompt_ids)
    if (id < 0 || id >= cfg.text.vocab_size) throw Error("prompt token id " + std::to_string(id) + " is outside the vocabulary");
  auto stop = req.stop_ids.empty() ? cfg.eos_token_ids : req.stop_ids;
  auto dev = m->device();
  // The visual-attention intervention: log(s) (+ K log(n / P) when restoring) on the image keys of
  // every decode step, [1, cap]; the positions of the image keys are kept to refill it per step.
  // The history window: -inf on the generated keys older than the window (the prompt ends at P - 1).
  torch::Tensor key_bias;
  std::vector<int64_t> image_keys;
  const bool restore = req.visual_attention_restore != 0, window = req.history_window > 0;
  const float log_scale = (float)std::log(req.visual_attention_scale);
  auto fill_key_bias = [&](int64_t n_keys) {
    float lb = log_scale;
    if (restore) lb += (float)(req.visual_attention_restore * std::log((double)n_keys / (double)P));
    auto host = torch::zeros({1, cap}, torch::kFloat);
    auto* b = host.data_ptr<float>();
    for (auto i : image_keys) b[i] = lb;
    // the query is key n_keys - 1: it sees itself and the `history_window` keys before it
    if (window)
      for (int64_t j = P; j < n_keys - 1 - req.history_window; ++j) b[j] = -std::numeric_limits<float>::infinity();
    key_bias = host.to(dev);
  };
  if (window) fill_key_bias(P + 1);
  if (req.visual_attention_scale != 1.0 || restore) {
    for (int64_t i = 0; i < P; ++i)
      if (req.prompt_ids[i] == cfg.image_token_id || req.prompt_ids[i] == cfg.video_token_id) image_keys.push_back(i);
    fill_key_bias(P + 1);
  }

  KVCache cache;
  cache.allocate(cfg.text, 1, cap, m->dtype(), dev);
  GenerationResult res;
  res.prompt_tokens = P;
  res.tokens.assign(G, {});
  res.finish.assign(G, "");

  // ---- prefill (batch 1) ----
  auto t0 = clock::now();
  ForwardInput in;
  in.input_ids = torch::tensor(req.prompt_ids, torch::kLong).view({1, P});
  in.pixel_values = req.pixel_values;
  in.grids = req.grids;
  in.pvm = req.pvm;
  ForwardHooks hooks;
  if (req.configure) req.configure(hooks, true);
  auto out = m->forward(in, &cache, hooks);
  if (req.after_forward) req.after_forward(out, true);
  const int64_t delta = out.rope_deltas.empty() ? 0 : out.rope_deltas[0];
  auto logits = out.logits.select(1, 0).to(torch::kCPU).contiguous();  // [1, V]
  if (G > 1) {
    cache.repeat_batch(G);
    logits = logits.expand({G, logits.size(1)}).contiguous();
  }
  res.prefill_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();

  std::vector<Sampler> samplers;
  std::vector<std::vector<int64_t>> ctx(G, req.prompt_ids);
  for (int64_t g = 0; g < G; ++g) samplers.emplace_back(req.sampling, (uint64_t)g);
  std::vector<bool> done(G, false);
  const int64_t V = logits.size(1);
  auto t1 = clock::now();
  bool stop_all = false;
  for (int64_t step = 0; step < req.max_new_tokens; ++step) {
    std::vector<int64_t> next(G, cfg.pad_token_id);
    for (int64_t g = 0; g < G; ++g) {
      if (done[g]) continue;
      int64_t tok = samplers[g].next(logits[g].data_ptr<float>(), V, ctx[g]);
      next[g] = tok;
      ctx[g].push_back(tok);
      res.tokens[g].push_back(tok);
      if (req.on_token && !req.on_token(g, tok, step)) stop_all = true;
      if (std::find(stop.begin(), stop.end(), tok) != stop.end()) {
        done[g] = true;
        res.finish[g] = "stop";
      }
    }
    if (req.cancel && req.cancel->load()) {
      for (int64_t g = 0; g < G; ++g)
        if (!done[g]) res.finish[g] = "cancelled", done[g] = true;
    }
    if (stop_all)
      for (int64_t g = 0; g < G; ++g)
        if (!done[g]) res.finish[g] = "cancelled", done[g] = true;
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    if (step + 1 == req.max_new_tokens) break;
    if (cache.length + 1 > cap) {
      for (int64_t g = 0; g < G; ++g)
        if (!done[g]) res.finish[g] = "length", done[g] = true;
      break;
    }
    // ---- one decode step for all G rows (finished rows feed a pad and are ignored) ----
    ForwardInput din;
    din.input_ids = torch::tensor(next, torch::kLong).view({G, 1});
    din.position_ids = torch::full({3, G, 1}, cache.length + delta, torch::kLong);
    din.pvm = req.pvm;
    if (restore || window) fill_key_bias(cache.length + 1);  // this query sees the cache and itself
    din.key_bias = key_bias;
    ForwardHooks dhooks;
    if (req.configure) req.configure(dhooks, false);
    auto o = m->forward(din, &cache, dhooks);
    if (req.after_forward) req.after_forward(o, false);
    logits = o.logits.select(1, 0).to(torch::kCPU).contiguous();
    ++res.decode_steps;
  }
  for (int64_t g = 0; g < G; ++g)
    if (res.finish[g].empty()) res.finish[g] = "length";
  res.decode_ms = std::chrono::duration<double, std::milli>(clock::now() - t1).count();
  return res;
}

GenerationResult generate(Qwen3VLForConditionalGeneration& m, const GenerationRequest& req) {
  if (!(req.visual_attention_scale > 0) || !std::isfinite(req.visual_attention_scale))
    throw Error("visual attention scale must be a positive number, got " + std::to_string(req.visual_attention_scale));
  if (!(req.visual_attention_restore >= -4 && req.visual_attention_restore <= 4))
    throw Error("visual attention restore exponent must be in [-4, 4], got " + std::to_string(req.visual_attention_restore));
  if ((req.visual_attention_scale != 1.0 || req.visual_attention_restore != 0) && req.vismem.enabled)
    throw Error("the visual attention scale and VisMem exclude each other");
  if (req.history_window < 0) throw Error("history window must be >= 0, got " + std::to_string(req.history_window));
  if (req.history_window > 0 && req.vismem.enabled) throw Error("the history window and VisMem exclude each other");
  try {
    if (req.vismem.enabled) return generate_with_vismem(m, req);
    return generate_impl(m, req);
  } catch (...) {
    // An allocator failure (KV cache, activations) says what was being generated, in one line.
    rethrow_with_context("generate", "generating (prompt " + std::to_string(req.prompt_ids.size()) + " tokens + up to " +
                                         std::to_string(req.max_new_tokens) + " new, " +
                                         std::to_string(req.num_sequences) + " sequences)");
  }
}

}  // namespace pvm
