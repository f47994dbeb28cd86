// Generation: preallocated KV cache, one prefill, token-by-token decode of one or several
// sequences (a GRPO group shares the prompt's prefill), streaming callback, cancellation.
#pragma once
#include <array>
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "engine/base/sampling.h"
#include "engine/model.h"

namespace pvm {

// VisMem during one generation (engine/vismem.h); needs a VisMem adapter attached to the model.
struct VismemGenerate {
  bool enabled = false;
  // "model": a memory is formed when the model emits a start token; "separators": after each
  // separator token (the adapter's list) with probability `p` the engine makes the next token a
  // start token, long-term with probability `long_fraction` (stage-1 rollouts, the paper's random
  // invocation at delimiters).
  std::string invoke = "model";
  double p = 1.0, long_fraction = 0.5;
  int64_t max_invocations = 4;  // per sequence; start tokens are masked out after that many
  uint64_t seed = 0;            // of the separators mode's draws (sequence g uses stream g)
  // Counterfactual re-run of "model"-mode rollouts (stage 2, engine/train_vismem.h). Sequence g
  // replays replay[g] (an earlier completion) up to its first start token, its sampler drawing as
  // the original's did (so the continuation uses the same sampling stream), then:
  //   "swap": that memory and every later one the sequence invokes are of the other type (the start
  //           token recorded is the inserted type's, so teacher forcing re-forms the same memory);
  //   "skip": no memory: the replayed start token is replaced by the same draw with the start tokens
  //           masked, and they stay masked.
  // "none": no replay.
  std::string counterfactual = "none";
  std::vector<std::vector<int64_t>> replay;  // one per sequence when counterfactual != "none"
  std::vector<uint64_t> streams;             // sampling stream of each sequence (empty: sequence g uses g)
};

// One memory insertion, as the generation loop performs it (the probes mark it): in sequence `seq`
// the chunk [start, `rows` latent rows, end] fills cache slots first_slot .. first_slot + rows + 1.
struct MemoryInsertion {
  int64_t seq = 0;
  std::string type;          // "short" | "long"
  int64_t token_index = 0;   // index of the start token in the sequence's generated tokens
  int64_t first_slot = 0;    // cache slot of the start token
  int64_t rows = 0;          // latent rows N
  int64_t chunk_offset = 0;  // query row of the start token inside the forward's chunk
};

struct GenerationRequest {
  std::vector<int64_t> prompt_ids;
  torch::Tensor pixel_values;                 // [L, C*T*P*P] f32 for all images (optional)
  std::vector<std::array<int64_t, 3>> grids;  // one per image
  int64_t max_new_tokens = 256;
  std::vector<int64_t> stop_ids;  // empty = the config's eos ids
  SamplingParams sampling;
  bool pvm = true;  // use the model's PVM blocks (false = baseline on the same backbone)
  int64_t num_sequences = 1;  // sequence i samples with stream i (equals a one-by-one run of stream i)
  int64_t max_context = 0;    // KV capacity; 0 = prompt + max_new_tokens
  // An intervention for the dilution question (issue 25): every generated token's attention weight
  // on the image keys (the prompt's image-pad positions) is multiplied by this factor in every
  // layer before the softmax renormalises (log(s) added to those logits). The prompt is read as
  // without it. 1 = off (the model as it is); must be > 0. Not with VisMem.
  double visual_attention_scale = 1.0;
  // The length-matched form of the same intervention: at a decode step whose query sees n keys (the
  // P prompt tokens and the answer so far), the image weight is further multiplied by (n / P)^K. Under
  // even attention the image's share falls as P / n, so K = 1 gives back exactly what the answer's
  // length took, and the first generated tokens (n ~ P) are left almost as they are. K < 0 does the
  // opposite: the image fades faster than the answer's length alone makes it (x (P/n)^|K|), a
  // stronger dilution of the image signal only. 0 = off; must be in [-4, 4]. Not with VisMem.
  double visual_attention_restore = 0.0;
  // The answer-history window (engine/text_model.h history_window_mask): a generated token sees the
  // prompt and only itself and the last N generated tokens before it, as a decoder trained with
  // `history_window` N saw them. 0 = off (every token sees the whole answer). Not with VisMem.
  int64_t history_window = 0;
  // Called for every generated token (seq index, token id, step); return false to stop everything.
  std::function<bool(int64_t seq, int64_t token, int64_t step)> on_token;
  const std::atomic<bool>* cancel = nullptr;
  // Lets probes attach observers to each forward (prefill = true first).
  std::function<void(ForwardHooks& hooks, bool prefill)> configure;
  std::function<void(const ForwardOutput& out, bool prefill)> after_forward;
  VismemGenerate vismem;
  // VisMem: called before the forward that inserts a memory (once per inserting sequence).
  std::function<void(const MemoryInsertion&)> on_insert;
};

struct GenerationResult {
  std::vector<std::vector<int64_t>> tokens;  // generated ids per sequence (stop token included)
  std::vector<std::string> finish;           // "stop" | "length" | "cancelled"
  int64_t prompt_tokens = 0;
  double prefill_ms = 0, decode_ms = 0;
  int64_t decode_steps = 0;  // forward calls after the prefill
  std::vector<std::vector<MemoryInsertion>> insertions;  // VisMem: per sequence, in order
  double prefill_tokens_per_s() const { return prefill_ms > 0 ? prompt_tokens * 1000.0 / prefill_ms : 0; }
  // generated tokens of all sequences per second of decode time
  double decode_tokens_per_s() const;
};

GenerationResult generate(Qwen3VLForConditionalGeneration& m, const GenerationRequest& req);

}  // namespace pvm
