// Probes of visual signal dilution (definitions: docs/MODEL.md#dilution-and-probes), recorded per generated token while
// generating: visual attention mass per layer (and per head), the same without sink tokens, PVM
// activity, an optional backbone heatmap on the merged patch grid, and an optional logit lens.
//
// Timing: every forward pass (the prefill, then each decode step) produces exactly one token; the
// probes of a token come from the forward whose logits it was sampled from, i.e. from the very
// attention computation (ForwardHooks::attention) that produced it. Only batch row 0 (sequence 0)
// is recorded.
//
// Definitions (all per layer l, for the last query position of the forward):
// - mass: sum of softmax attention probabilities over the visual key positions (the prompt's
//   <|image_pad|> positions), averaged over query heads; per head when ProbeOptions::per_head.
// - sink tokens: at the prefill, per layer, the `k` visual keys with the largest head-averaged
//   attention of the prompt's last position; k = ProbeOptions::sink_k, or when 0
//   max(1, ceil(1% of the visual tokens)). They are fixed for the rest of the generation.
// - mass_nosink: mass minus the (head-averaged) probability on those sink keys. Not renormalised,
//   so mass_nosink <= mass, and both are in [0, 1].
// - PVM (per PVM layer): |gate_alpha|, ||injection|| / ||h_mid|| of the last position, entropy (nats)
//   of the head-averaged PVM attention over the visual memory (0..log Nv), and its top patches.
// - heatmap: head-averaged attention on each visual token, per layer; heatmap() lays it out on an
//   image's merged grid [t * h/merge, w/merge].
// - logit lens: final norm + lm_head on the last position's hidden state after each layer;
//   lens_first_layer = first layer whose top-1 equals the final top-1 (the model's own logits),
//   lens_kl[l] = KL(final || layer l) in nats.
#pragma once
#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/base/dilution.h"  // fit_hyperbolic, fit_power_law: callers of the probes fit them
#include "engine/generate.h"
#include "engine/model.h"

namespace pvm {

struct ProbeOptions {
  bool visual_mass = true;
  bool per_head = false;
  bool sink_excluded = true;
  bool pvm = true;
  bool heatmap = false;
  bool logit_lens = false;
  int sink_k = 0;   // 0 = max(1, ceil(1% of the visual tokens))
  int pvm_top = 5;  // top patches reported per PVM layer
  bool host = true;  // reduce f32 CPU tensors with host loops (false: the tensor path, as on CUDA)
  bool vismem = true;  // VisMem: invocations, memory mass, what inserted rows attend to (when there are any)
  bool any() const { return visual_mass || per_head || sink_excluded || pvm || heatmap || logit_lens; }
};

struct PvmLayerProbe {
  int64_t layer = 0;
  float gate = 0;            // |gate_alpha|
  float injection_norm = 0;  // ||PVM output|| at the last position
  float residual_norm = 0;   // ||h_mid||
  float ratio = 0;           // injection_norm / residual_norm
  float entropy = 0;         // nats, of the head-averaged attention over the visual memory
  std::vector<int64_t> top;  // indices into the visual memory (= visual token order), largest first
  std::vector<float> top_p;
  std::vector<float> attn;   // [Nv] head-averaged attention over the visual memory, when heatmap
};

// VisMem (engine/vismem.h): what the latent rows of one inserted memory attended to, per layer,
// averaged over the rows and heads: the mass on the prompt's visual keys, on the memory's own chunk
// (its start token and latent rows) and on every other key (prompt text, earlier answer); the three
// sum to 1.
struct InsertedMemoryProbe {
  std::string type;  // "short" | "long"
  int64_t rows = 0, first_slot = 0, token_index = 0;  // latent rows, cache slot of the start token, its token index
  std::vector<float> visual, self, other;  // [layers]
};

struct TokenProbe {
  int64_t step = 0, token = -1;
  int64_t keys = 0;                      // keys attended (context length) in this forward
  std::vector<float> mass;               // [layers] (empty when off)
  std::vector<float> mass_nosink;        // [layers]
  std::vector<std::vector<float>> mass_heads;  // [layers][heads] when per_head
  std::vector<PvmLayerProbe> pvm;        // one per PVM layer that ran
  std::vector<std::vector<float>> visual_attn;  // [layers][Nv] when heatmap
  int64_t lens_first_layer = -1;         // when logit_lens
  std::vector<float> lens_kl;            // [layers]
  // VisMem, only when memories are in play (absent from the JSON otherwise):
  std::string invoked;                   // on a start token: the memory ("short" | "long") inserted after it
  std::vector<float> memory_mass;        // [layers] attention (head mean) on all latent rows so far
  std::vector<InsertedMemoryProbe> inserted;  // on the token the insertion's forward produced
};

// Boolean mask of the visual (<|image_pad|>) positions of a prompt.
std::vector<bool> visual_positions(const std::vector<int64_t>& prompt_ids, int64_t image_token_id);

class ProbeRecorder {
 public:
  // `visual`: one entry per prompt position (true at <|image_pad|>); `grids`: per image (t, h, w)
  // in patches, for heatmaps; `merge` = vision.spatial_merge_size.
  ProbeRecorder(Qwen3VLForConditionalGeneration model, std::vector<bool> visual, ProbeOptions opt = {},
                std::vector<std::array<int64_t, 3>> grids = {}, int64_t merge = 2);
  // Hooks configure / after_forward / on_token of `req` (an existing on_token is still called).
  // With every probe off nothing is attached. The recorder must outlive the generation.
  void attach(GenerationRequest& req);
  void clear() {
    tokens_.clear(); pending_.reset(); sinks_.clear(); probe_ns_ = 0;
    mem_slots_.clear(); mem_slots_t_ = torch::Tensor(); f_insert_.reset();
  }

  const std::vector<TokenProbe>& tokens() const { return tokens_; }
  const ProbeOptions& options() const { return opt_; }
  int64_t num_visual() const { return (int64_t)vis_idx_.size(); }
  const std::vector<std::vector<int64_t>>& sinks() const { return sinks_; }  // per layer, key positions
  // Wall time spent inside the probe hooks during decode steps (not prefill), for the benchmark's
  // direct overhead figure: probe time / decode time.
  double decode_probe_seconds() const { return probe_ns_ * 1e-9; }
  // Called once per recorded token (after it is complete).
  std::function<void(const TokenProbe&)> on_probe;

  // Backbone attention of token `i` at `layer` on image `image`: [t*h/merge, w/merge] f32 (CPU).
  // layer = -1: the mean over layers.
  torch::Tensor heatmap(size_t i, int64_t layer, size_t image) const;
  // PVM attention of token `i` in the PVM block of decoder layer `pvm_layer` (-1: mean over the
  // PVM layers) on image `image`, laid out like heatmap(). Needs ProbeOptions::heatmap and pvm.
  torch::Tensor pvm_heatmap(size_t i, int64_t pvm_layer, size_t image) const;
  // One JSON object per token: {"step","token","keys","mass":[...],"mass_nosink":[...],...}.
  void write_jsonl(const std::string& path) const;
  static std::string to_json(const TokenProbe& t);

 private:
  void configure(ForwardHooks& hooks, bool prefill);
  // After each forward: one reducer per probe family turns what the hooks of configure() kept
  // into the token's TokenProbe (host sums for f32 CPU tensors, else a few tensor ops and copies).
  void after_forward(const ForwardOutput& out, bool prefill);
  void reduce_mass(TokenProbe& t) const;      // mass, mass_nosink, mass_heads
  void reduce_heatmap(TokenProbe& t) const;   // visual_attn
  void reduce_pvm(TokenProbe& t) const;       // pvm
  void reduce_logit_lens(const ForwardOutput& out, TokenProbe& t);  // lens_kl, lens_first_layer (reuses buffers)
  void reduce_vismem(TokenProbe& t);          // memory_mass, inserted

  Qwen3VLForConditionalGeneration model_;
  std::vector<bool> visual_;
  ProbeOptions opt_;
  std::vector<std::array<int64_t, 3>> grids_;
  int64_t merge_;
  std::vector<int64_t> vis_idx_;
  torch::Tensor vis_idx_t_;  // on the model's device
  std::vector<std::vector<int64_t>> sinks_;
  std::vector<torch::Tensor> sink_t_;  // per layer, key positions (device)
  // per layer [capacity, 2] f32: column 0 marks visual keys, column 1 that layer's sink keys, so one
  // mm of the last query's probabilities [Hq, T] gives both masses per head (few ops per layer).
  std::vector<torch::Tensor> sel_;
  // per forward
  std::vector<torch::Tensor> f_mass_heads_, f_vis_attn_, f_lens_logp_;  // f_mass_heads_[l]: [Hq, 2]
  // Host path (f32 CPU tensors): the probabilities are already in host memory, so the sums are
  // plain loops; on a small model each tensor op (~5 us) would cost more than its arithmetic.
  // h_mass_[l]: [Hq * 2] (visual, sink per head), h_vis_[l]: [Nv] head-mean over the visual keys.
  std::vector<std::vector<float>> h_mass_, h_vis_;
  void host_observe(int64_t layer, const torch::Tensor& probs, bool mass);
  static bool pvm_probe_on_host(const PvmProbe& p);
  torch::Tensor h_lens_;  // [L, H] f32 CPU: the last position of each layer's output
  torch::Tensor n_lens_, l_lens_;  // [L, H] normed, [L+1, V] layer logits + the model's own (host lens)
  std::map<int64_t, PvmProbe> f_pvm_;
  int64_t f_keys_ = 0;
  int64_t probe_ns_ = 0;
  // VisMem (row 0): cache slots of every latent row so far, the insertion the next forward makes,
  // and per forward the memory mass and the inserted rows' attention sums ([L, 3] visual/self/all)
  std::vector<int64_t> mem_slots_;
  torch::Tensor mem_slots_t_;
  std::unique_ptr<MemoryInsertion> f_insert_;
  std::vector<torch::Tensor> f_mem_mass_, f_ins_;
  std::unique_ptr<TokenProbe> pending_;
  std::vector<TokenProbe> tokens_;
};

// Text of a prompt preset: <source_dir>/assets/prompts/<name>.txt with '-' read as '_'
// ("blind-painter" -> blind_painter.txt). Errors name the preset and the file.
std::string load_prompt_preset(const std::string& name);

}  // namespace pvm
