#include "engine/base/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "engine/base/error.h"

namespace pvm {

void SamplingParams::validate() const {
  // Every comparison is written so that NaN fails it; infinities are rejected by the upper bounds.
  if (!(temperature > 0 && temperature <= kMaxTemperature))
    throw Error("--temperature must be a finite number in (0, " + std::to_string(int(kMaxTemperature)) +
                "] when sampling (0 means greedy)");
  if (top_k < 0) throw Error("--top-k must be >= 0 (0 = off)");
  if (!(top_p > 0 && top_p <= 1)) throw Error("--top-p must be in (0, 1]");
  if (!(min_p >= 0 && min_p <= 1)) throw Error("--min-p must be in [0, 1]");
  if (!(repetition_penalty > 0 && repetition_penalty <= kMaxRepetitionPenalty))
    throw Error("--repetition-penalty must be a finite number in (0, " + std::to_string(int(kMaxRepetitionPenalty)) + "]");
}

Sampler::Sampler(const SamplingParams& p, uint64_t stream) : p_(p), rng_(p.seed * 0x9E3779B97F4A7C15ull + stream) {}

int64_t Sampler::next(float* x, int64_t V, const std::vector<int64_t>& context) {
  const float NEG = -std::numeric_limits<float>::infinity();
  // NaN / +inf logits come from non-finite weights or an overflow in a narrow dtype; argmax over
  // them picks id 0 every step ("!!!!" with exit 0), so they are an error, not a result.
  const float POS = std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < V; ++i)
    if (!(x[i] < POS))
      throw Error("the model produced a non-finite logit (" + std::string(std::isnan(x[i]) ? "NaN" : "+inf") + " for id " +
                  std::to_string(i) + "): non-finite weights, or an overflow in this dtype (try --dtype f32)");
  if (p_.repetition_penalty != 1.0) {
    // HF: for every id present in the context, logit<0 ? logit*p : logit/p (once per id).
    std::vector<int64_t> ids(context);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    const float pen = (float)p_.repetition_penalty;
    for (auto id : ids)
      if (id >= 0 && id < V) x[id] = x[id] < 0 ? x[id] * pen : x[id] / pen;
  }
  if (!p_.do_sample) {
    int64_t best = 0;
    for (int64_t i = 1; i < V; ++i)
      if (x[i] > x[best]) best = i;  // first maximum, as torch.argmax
    probs_.clear();
    return best;
  }
  if (p_.temperature != 1.0) {
    const float t = (float)p_.temperature;
    for (int64_t i = 0; i < V; ++i) x[i] = x[i] / t;
  }
  if (p_.top_k > 0 && p_.top_k < V) {
    // keep logits >= the k-th largest (ties at the threshold survive, as in HF)
    std::vector<float> tmp(x, x + V);
    std::nth_element(tmp.begin(), tmp.begin() + (p_.top_k - 1), tmp.end(), std::greater<float>());
    const float thr = tmp[p_.top_k - 1];
    for (int64_t i = 0; i < V; ++i)
      if (x[i] < thr) x[i] = NEG;
  }
  auto softmax_into = [&](std::vector<float>& out) {
    out.assign(V, 0.f);
    float mx = NEG;
    for (int64_t i = 0; i < V; ++i) mx = std::max(mx, x[i]);
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) {
      float e = x[i] == NEG ? 0.f : std::exp(x[i] - mx);
      out[i] = e;
      sum += e;
    }
    for (auto& e : out) e = (float)(e / sum);
  };
  if (p_.top_p < 1.0) {
    // HF: sort ascending, cumulative softmax; drop tokens whose cumulative prob <= 1 - top_p,
    // always keeping the most likely one.
    std::vector<float> pr;
    softmax_into(pr);
    order_.resize(V);
    std::iota(order_.begin(), order_.end(), 0);
    std::stable_sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) { return x[a] < x[b]; });
    double cum = 0;
    const double lim = 1.0 - p_.top_p;
    for (int64_t r = 0; r < V - 1; ++r) {
      cum += pr[order_[r]];
      if (cum <= lim) x[order_[r]] = NEG;
      else break;
    }
  }
  if (p_.min_p > 0) {
    std::vector<float> pr;
    softmax_into(pr);
    float top = *std::max_element(pr.begin(), pr.end());
    for (int64_t i = 0; i < V; ++i)
      if (pr[i] < (float)p_.min_p * top) x[i] = NEG;
  }
  softmax_into(probs_);
  // inverse-CDF draw over index order
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  double cum = 0;
  int64_t last = -1;
  for (int64_t i = 0; i < V; ++i) {
    if (probs_[i] <= 0) continue;
    last = i;
    cum += probs_[i];
    if (u < cum) return i;
  }
  return last;
}

}  // namespace pvm
