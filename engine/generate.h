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
  // Called for every generated token (seq index, token id, step); return false to stop everything.
  std::function<bool(int64_t seq, int64_t token, int64_t step)> on_token;
  const std::atomic<bool>* cancel = nullptr;
  // Lets probes attach observers to each forward (prefill = true first).
  std::function<void(ForwardHooks& hooks, bool prefill)> configure;
  std::function<void(const ForwardOutput& out, bool prefill)> after_forward;
};

struct GenerationResult {
  std::vector<std::vector<int64_t>> tokens;  // generated ids per sequence (stop token included)
  std::vector<std::string> finish;           // "stop" | "length" | "cancelled"
  int64_t prompt_tokens = 0;
  double prefill_ms = 0, decode_ms = 0;
  int64_t decode_steps = 0;  // forward calls after the prefill
  double prefill_tokens_per_s() const { return prefill_ms > 0 ? prompt_tokens * 1000.0 / prefill_ms : 0; }
  // generated tokens of all sequences per second of decode time
  double decode_tokens_per_s() const;
};

GenerationResult generate(Qwen3VLForConditionalGeneration& m, const GenerationRequest& req);

}  // namespace pvm
