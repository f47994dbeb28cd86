#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "engine/base/error.h"
#include "engine/base/sampling.h"

using namespace pvm;

namespace {
std::vector<float> logits() { return {2.0f, 1.0f, 0.5f, 3.0f, -1.0f, 0.0f, 2.5f, -3.0f}; }
std::vector<double> softmax(const std::vector<float>& x) {
  double mx = -1e30, s = 0;
  for (float v : x) mx = std::max(mx, (double)v);
  std::vector<double> p;
  for (float v : x) p.push_back(std::exp(v - mx)), s += p.back();
  for (auto& v : p) v /= s;
  return p;
}
std::vector<float> processed(SamplingParams p, std::vector<int64_t> ctx = {}) {
  p.do_sample = true;
  Sampler s(p);
  auto x = logits();
  s.next(x.data(), x.size(), ctx);
  return s.last_probs();
}
}  // namespace

TEST(Sampling, GreedyIsArgmaxAfterRepetitionPenalty) {
  SamplingParams p;
  Sampler s(p);
  auto x = logits();
  EXPECT_EQ(s.next(x.data(), x.size(), {}), 3);
  p.repetition_penalty = 2.0;  // 3.0 -> 1.5 < 2.5 (id 6); negative logits are multiplied
  Sampler s2(p);
  x = logits();
  EXPECT_EQ(s2.next(x.data(), x.size(), {3, 3, 4}), 6);
  EXPECT_FLOAT_EQ(x[3], 1.5f);
  EXPECT_FLOAT_EQ(x[4], -2.0f);
}

TEST(Sampling, TopKKeepsTheKLargest) {
  SamplingParams p;
  p.top_k = 3;  // ids 3 (3.0), 6 (2.5), 0 (2.0)
  auto pr = processed(p);
  auto ref = softmax({2.0f, 3.0f, 2.5f});
  EXPECT_NEAR(pr[0], ref[0], 1e-6);
  EXPECT_NEAR(pr[3], ref[1], 1e-6);
  EXPECT_NEAR(pr[6], ref[2], 1e-6);
  for (int i : {1, 2, 4, 5, 7}) EXPECT_EQ(pr[i], 0.f);
}

TEST(Sampling, TopPKeepsTheSmallestSetAboveP) {
  // explicit: sort descending, keep tokens until the cumulative mass reaches top_p (HF keeps the
  // token that crosses the threshold).
  auto full = softmax(logits());
  for (double top_p : {0.3, 0.5, 0.8, 0.95}) {
    SamplingParams p;
    p.top_p = top_p;
    auto pr = processed(p);
    std::vector<int> order{3, 6, 0, 1, 2, 5, 4, 7};
    double cum = 0;
    std::vector<int> kept;
    for (int id : order) {
      kept.push_back(id);
      cum += full[id];
      if (cum >= top_p) break;
    }
    double z = 0;
    for (int id : kept) z += full[id];
    for (int id = 0; id < 8; ++id) {
      bool k = std::find(kept.begin(), kept.end(), id) != kept.end();
      EXPECT_NEAR(pr[id], k ? full[id] / z : 0.0, 1e-6) << "top_p " << top_p << " id " << id;
    }
  }
}

TEST(Sampling, MinPAndTemperature) {
  SamplingParams p;
  p.min_p = 0.3;  // keep p >= 0.3 * p(max)
  auto pr = processed(p);
  auto full = softmax(logits());
  for (int id = 0; id < 8; ++id) EXPECT_EQ(pr[id] > 0, full[id] >= 0.3 * full[3]) << id;
  SamplingParams t;
  t.temperature = 0.5;
  auto pt = processed(t);
  auto x = logits();
  for (auto& v : x) v /= 0.5f;
  auto ref = softmax(x);
  for (int id = 0; id < 8; ++id) EXPECT_NEAR(pt[id], ref[id], 1e-6);
}

TEST(Sampling, SeededDrawsReproduceAndFollowTheDistribution) {
  SamplingParams p;
  p.do_sample = true;
  p.seed = 5;
  std::map<int64_t, int> counts;
  Sampler a(p), b(p), c(p, 1);
  bool differs = false;
  const int N = 20000;
  for (int i = 0; i < N; ++i) {
    auto x1 = logits(), x2 = logits(), x3 = logits();
    auto t = a.next(x1.data(), 8, {});
    EXPECT_EQ(t, b.next(x2.data(), 8, {}));
    differs |= t != c.next(x3.data(), 8, {});
    counts[t]++;
  }
  EXPECT_TRUE(differs);  // another stream draws differently
  auto full = softmax(logits());
  for (int id = 0; id < 8; ++id) EXPECT_NEAR(counts[id] / (double)N, full[id], 0.015) << id;
}

TEST(Sampling, BadOptionsAreErrors) {
  SamplingParams p;
  p.do_sample = true;
  p.temperature = 0;
  EXPECT_THROW(p.validate(), Error);
  p.temperature = 1;
  p.top_p = 1.5;
  EXPECT_THROW(p.validate(), Error);
  p.top_p = 1;
  p.top_k = -1;
  EXPECT_THROW(p.validate(), Error);
}
