// Next-token selection with HF's order of logit processing: repetition penalty -> temperature ->
// top-k -> top-p -> min-p -> sample from softmax. Our own RNG (mt19937_64) makes a seeded run
// reproduce on any device and LibTorch version.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace pvm {

// Upper bounds: beyond these the distribution is uniform / the penalty absurd, and inf overflows.
constexpr double kMaxTemperature = 100.0;
constexpr double kMaxRepetitionPenalty = 100.0;

struct SamplingParams {
  bool do_sample = false;  // false = greedy (argmax after the repetition penalty)
  double temperature = 1.0;
  int64_t top_k = 0;       // 0 = off
  double top_p = 1.0;      // 1 = off
  double min_p = 0.0;      // 0 = off
  double repetition_penalty = 1.0;
  uint64_t seed = 0;
  // Throws pvm::Error naming the bad option; rejects NaN / inf everywhere (also when greedy, so a
  // broken temperature never silently means "greedy").
  void validate() const;
};

class Sampler {
 public:
  Sampler(const SamplingParams& p, uint64_t stream = 0);  // stream: seed offset of one sequence
  // logits: V floats (modified in place). `context`: prompt + generated ids (for the penalty).
  int64_t next(float* logits, int64_t V, const std::vector<int64_t>& context);
  // The processed distribution of the last call (for tests): probabilities over V, 0 where filtered.
  const std::vector<float>& last_probs() const { return probs_; }

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<float> probs_;
  std::vector<int32_t> order_;
};

}  // namespace pvm
