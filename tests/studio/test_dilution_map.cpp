// The GUI-free parts of the Dilution map and Gaze replay views: the layer x position maps (one
// side, the PVM - baseline difference) against a naive reference, the incremental head means, the
// colour scales (the difference map's is symmetric about 0), the cost on a 36-layer, 32-head,
// 16k-token trace, and the replay clock and export plan.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <random>

#include "views/dilution_map_data.h"
#include "views/gaze_replay.h"

using namespace pvm::studio;
using namespace pvm::studio::dmap;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Tokens with random masses; a few with fewer layers and NaN values (what the maps must skip).
std::vector<TokenRec> make_tokens(int n, int layers, int heads, uint32_t seed, bool ragged = true) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<TokenRec> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const int L = ragged && i % 13 == 5 ? layers - 1 : layers;
    t[size_t(i)].mass.resize(size_t(L));
    t[size_t(i)].mass_nosink.resize(size_t(L));
    for (int l = 0; l < L; ++l) {
      t[size_t(i)].mass[size_t(l)] = ragged && i % 17 == 3 && l == 1 ? kNaN : u(rng);
      t[size_t(i)].mass_nosink[size_t(l)] = t[size_t(i)].mass[size_t(l)] * 0.5f;
    }
    if (heads) {
      t[size_t(i)].mass_heads.assign(size_t(L), std::vector<float>(size_t(heads)));
      for (auto& row : t[size_t(i)].mass_heads)
        for (float& x : row) x = u(rng);
    }
  }
  return t;
}

// Naive reference: the mean of the finite values over positions [c0, c1) of layer l.
float ref_mean(const std::vector<std::vector<float>>& full, int l, int c0, int c1) {
  double s = 0;
  int k = 0;
  for (int c = c0; c < c1; ++c)
    if (l < int(full[size_t(c)].size()) && std::isfinite(full[size_t(c)][size_t(l)])) s += full[size_t(c)][size_t(l)], ++k;
  return k ? float(s / k) : kNaN;
}

void expect_same(float a, float b, const std::string& where) {
  if (std::isnan(b)) {
    EXPECT_TRUE(std::isnan(a)) << where << ": " << a << " where the reference has no value";
  } else {
    EXPECT_NEAR(a, b, 1e-6) << where;
  }
}

uint8_t ch(uint32_t c, int i) { return uint8_t(c >> (8 * i) & 255); }

}  // namespace

TEST(DilutionMap, PositionMapIsTheMeanPerPixelColumn) {
  const int n = 257, L = 6;
  const auto toks = make_tokens(n, L, 0, 1);
  std::vector<std::vector<float>> full;
  for (const auto& t : toks) full.push_back(t.mass);
  const Matrix whole = layer_by_position(toks);
  ASSERT_EQ(whole.rows, L);
  ASSERT_EQ(whole.cols, n);
  EXPECT_TRUE(std::isnan(whole.at(L - 1, 5))) << "token 5 has one layer less";
  for (int width : {1, 2, 7, 100, 256, 257, 1000}) {
    const Matrix m = position_map(toks, false, width);
    const int cols = std::min(width, n);
    ASSERT_EQ(m.rows, L) << width;
    ASSERT_EQ(m.cols, cols) << width;
    const Matrix d = decimate_columns(whole, width);
    ASSERT_EQ(d.cols, cols);
    for (int x = 0; x < cols; ++x) {
      const int c0 = int(int64_t(x) * n / cols), c1 = int(int64_t(x + 1) * n / cols);
      for (int l = 0; l < L; ++l) {
        const std::string where = "width " + std::to_string(width) + " column " + std::to_string(x) + " layer " + std::to_string(l);
        expect_same(m.at(l, x), ref_mean(full, l, c0, c1), where);
        expect_same(d.at(l, x), ref_mean(full, l, c0, c1), where + " (decimate_columns)");
      }
    }
  }
  // The sink-excluded values are mass_nosink.
  const Matrix ns = position_map(toks, true, 0);
  EXPECT_FLOAT_EQ(ns.at(2, 10), toks[10].mass_nosink[2]);
  EXPECT_TRUE(position_map({}, false, 100).empty());
}

TEST(DilutionMap, DifferenceIsPvmMinusBaselinePerPosition) {
  const int L = 5;
  const auto base = make_tokens(90, L, 0, 2), pvm = make_tokens(131, L, 0, 3);  // PVM answer is longer
  std::vector<std::vector<float>> diff(131);
  for (int c = 0; c < 131; ++c) {
    for (int l = 0; l < L; ++l) {
      const bool both = c < 90 && l < int(base[size_t(c)].mass.size()) && l < int(pvm[size_t(c)].mass.size());
      diff[size_t(c)].push_back(both ? pvm[size_t(c)].mass[size_t(l)] - base[size_t(c)].mass[size_t(l)] : kNaN);
    }
  }
  for (int width : {0, 10, 64, 131, 500}) {
    const Matrix m = position_map_diff(base, pvm, false, width);
    const int cols = width <= 0 ? 131 : std::min(width, 131);
    ASSERT_EQ(m.cols, cols);
    ASSERT_EQ(m.rows, L);
    for (int x = 0; x < cols; ++x) {
      const int c0 = int(int64_t(x) * 131 / cols), c1 = int(int64_t(x + 1) * 131 / cols);
      for (int l = 0; l < L; ++l)
        expect_same(m.at(l, x), ref_mean(diff, l, c0, c1),
                    "width " + std::to_string(width) + " column " + std::to_string(x) + " layer " + std::to_string(l));
    }
  }
  // Past the shorter answer there is no difference (NaN, drawn grey), not a difference to zero.
  const Matrix full = position_map_diff(base, pvm, false, 0);
  EXPECT_TRUE(std::isnan(full.at(0, 100)));
  EXPECT_TRUE(position_map_diff(base, {}, false, 10).empty());
  // Matrix difference (head maps) over the union of the shapes.
  Matrix a{2, 2, {1, 2, 3, 4}}, b{2, 3, {10, 20, 30, 40, 50, 60}};
  const Matrix d = difference(a, b);
  EXPECT_FLOAT_EQ(d.at(0, 0), 9);
  EXPECT_FLOAT_EQ(d.at(1, 1), 46);
  EXPECT_TRUE(std::isnan(d.at(0, 2)));
}

TEST(DilutionMap, HeadMeansAccumulateAsTokensStreamIn) {
  const int L = 4, H = 6;
  auto toks = make_tokens(300, L, H, 4, false);
  toks[7].mass_heads[2][3] = kNaN;  // skipped, not counted
  // Naive reference.
  std::vector<double> s(size_t(L * H), 0);
  std::vector<int> k(size_t(L * H), 0);
  for (const auto& t : toks)
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h)
        if (std::isfinite(t.mass_heads[size_t(l)][size_t(h)])) s[size_t(l * H + h)] += t.mass_heads[size_t(l)][size_t(h)], ++k[size_t(l * H + h)];
  HeadMeans hm;
  std::vector<TokenRec> stream;
  for (size_t i = 0; i < toks.size(); i += 37) {  // as the session appends them
    for (size_t j = i; j < std::min(toks.size(), i + 37); ++j) stream.push_back(toks[j]);
    hm.update(stream);
  }
  EXPECT_EQ(hm.counted(), toks.size());
  const Matrix m = hm.mean();
  ASSERT_EQ(m.rows, L);
  ASSERT_EQ(m.cols, H);
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) EXPECT_NEAR(m.at(l, h), s[size_t(l * H + h)] / k[size_t(l * H + h)], 1e-6) << l << "," << h;
  const Matrix once = layer_by_head(toks);
  for (size_t i = 0; i < m.v.size(); ++i) EXPECT_NEAR(once.v[i], m.v[i], 1e-6);
  // A new, shorter generation starts over.
  std::vector<TokenRec> fresh(toks.begin(), toks.begin() + 3);
  hm.update(fresh);
  EXPECT_EQ(hm.counted(), 3u);
  EXPECT_NEAR(hm.mean().at(0, 0), (toks[0].mass_heads[0][0] + toks[1].mass_heads[0][0] + toks[2].mass_heads[0][0]) / 3, 1e-6);
  // No per-head probes: an empty map.
  EXPECT_TRUE(layer_by_head(make_tokens(10, L, 0, 5)).empty());
}

TEST(DilutionMap, DifferenceColoursAreSymmetricAboutZero) {
  // The view draws a difference over [-a, a], a = the largest |value|.
  Matrix m{1, 5, {-0.2f, -0.1f, 0.0f, 0.1f, 0.2f}};
  const float a = max_abs(m);
  EXPECT_FLOAT_EQ(a, 0.2f);
  const std::vector<uint32_t> px = to_rgba(m, true, -a, a);
  EXPECT_EQ(px[0], diverging(0.0f));
  EXPECT_EQ(px[4], diverging(1.0f));
  EXPECT_EQ(px[2], diverging(0.5f));
  // 0 is (near) white, negatives blue, positives red, and equal |values| equally far from white.
  for (int i = 0; i < 3; ++i) EXPECT_GT(ch(px[2], i), 240);
  EXPECT_GT(ch(px[0], 2), ch(px[0], 0));  // blue > red
  EXPECT_GT(ch(px[4], 0), ch(px[4], 2));  // red > blue
  auto dist_from_white = [&](uint32_t c) {
    double d = 0;
    for (int i = 0; i < 3; ++i) d += (255.0 - ch(c, i)) * (255.0 - ch(c, i));
    return std::sqrt(d);
  };
  EXPECT_NEAR(dist_from_white(px[1]), dist_from_white(px[3]), 40.0);
  EXPECT_NEAR(dist_from_white(px[0]), dist_from_white(px[4]), 40.0);
  // NaN cells are the missing grey; the sequential map brightens with the value.
  Matrix n{1, 3, {kNaN, 0.0f, 1.0f}};
  const std::vector<uint32_t> q = to_rgba(n, false, 0.0f, 1.0f);
  EXPECT_EQ(q[0], kMissing);
  auto lum = [&](uint32_t c) { return 0.3 * ch(c, 0) + 0.59 * ch(c, 1) + 0.11 * ch(c, 2); };
  float prev = -1;
  for (int i = 0; i <= 10; ++i) {
    const float l = float(lum(sequential(i / 10.0f)));
    EXPECT_GT(l, prev) << "sequential map not monotonic at " << i;
    prev = l;
  }
  float lo, hi;
  range(n, &lo, &hi);
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);
}

TEST(DilutionMap, CursorColumnsAndCsv) {
  EXPECT_EQ(column_to_token(0, 100, 1000), 0);
  EXPECT_EQ(column_to_token(99.99f, 100, 1000), 999);
  EXPECT_EQ(column_to_token(50, 100, 1000), 500);
  EXPECT_EQ(column_to_token(100, 100, 1000), -1);
  EXPECT_EQ(column_to_token(-1, 100, 1000), -1);
  EXPECT_EQ(column_to_token(10, 100, 0), -1);
  Matrix m{2, 3, {0.5f, kNaN, 1.25f, -2, 0, 3}};
  EXPECT_EQ(to_csv(m, "layer", "t"), "layer,t0,t1,t2\n0,0.5,,1.25\n1,-2,0,3\n");
}

// 36 layers, 32 heads, 16k tokens on both sides: what a long 8B run gives the view.
TEST(DilutionMap, StaysFastAt36Layers32Heads16kTokens) {
  const int N = 16384, L = 36, H = 32;
  const auto base = make_tokens(N, L, H, 6, false), pvm = make_tokens(N, L, H, 7, false);
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); };
  auto t0 = Clock::now();
  const Matrix d = position_map_diff(base, pvm, false, 1200);
  const double diff_ms = ms(t0);
  t0 = Clock::now();
  const Matrix one = position_map(pvm, false, 1200);
  const double one_ms = ms(t0);
  HeadMeans hb, hp;
  t0 = Clock::now();
  hb.update(base), hp.update(pvm);
  const Matrix heads = difference(hb.mean(), hp.mean());
  const double heads_ms = ms(t0);
  // Streaming: one more token per frame costs one token's worth of head sums.
  auto more = pvm;
  more.push_back(pvm[0]);
  t0 = Clock::now();
  hp.update(more);
  const double step_ms = ms(t0);
  std::printf("36x32x16k: difference map %.1f ms, one-side map %.1f ms, head means (all tokens, both sides) %.1f ms, "
              "one new token %.3f ms\n",
              diff_ms, one_ms, heads_ms, step_ms);
  EXPECT_EQ(d.cols, 1200);
  EXPECT_EQ(one.rows, L);
  EXPECT_EQ(heads.rows, L);
  EXPECT_EQ(heads.cols, H);
  // Generous bounds (a shared 2-core machine): a map rebuild must fit in a few frames, the
  // per-token head update in a fraction of one.
  EXPECT_LT(diff_ms, 250);
  EXPECT_LT(one_ms, 250);
  EXPECT_LT(step_ms, 2);
}

TEST(GazeReplay, ClockAdvancesAtTheChosenSpeed) {
  ReplayClock c;
  c.speed = 10;
  c.playing = true;
  EXPECT_FALSE(c.tick(0.05, 20));  // half a token
  EXPECT_EQ(c.token, 0);
  EXPECT_TRUE(c.tick(0.05, 20));
  EXPECT_EQ(c.token, 1);
  EXPECT_TRUE(c.tick(0.35, 20));  // 3.5 tokens: 3 now, the half carried
  EXPECT_EQ(c.token, 4);
  EXPECT_TRUE(c.tick(0.05, 20));
  EXPECT_EQ(c.token, 5);
  EXPECT_TRUE(c.tick(30.0, 20));  // a stalled frame counts as one second at most
  EXPECT_EQ(c.token, 15);
  EXPECT_TRUE(c.tick(1.0, 20));  // the end: stops on the last token
  EXPECT_EQ(c.token, 19);
  EXPECT_FALSE(c.playing);
  EXPECT_FALSE(c.tick(1.0, 20));
  c.toggle(20);  // play at the end starts over
  EXPECT_TRUE(c.playing);
  EXPECT_EQ(c.token, 0);
  c.loop = true;
  c.seek(18, 20);
  EXPECT_TRUE(c.tick(0.3, 20));  // 18 + 3 wraps to 1
  EXPECT_EQ(c.token, 1);
  EXPECT_TRUE(c.playing);
  c.toggle(20);
  EXPECT_FALSE(c.playing);
  EXPECT_FALSE(c.tick(1.0, 20));  // paused
  c.step(-5, 20);
  EXPECT_EQ(c.token, 0);
  c.step(100, 20);
  EXPECT_EQ(c.token, 19);
  c.seek(50, 7);  // a shorter answer: clamped
  EXPECT_EQ(c.token, 6);
  c.playing = true;
  EXPECT_FALSE(c.tick(1.0, 0));  // nothing to play
  EXPECT_FALSE(c.playing);
}

TEST(GazeReplay, ExportPlan) {
  EXPECT_EQ(replay_frames(0, 9, 1).size(), 10u);
  EXPECT_EQ(replay_frames(0, 9, 4), (std::vector<int>{0, 4, 8, 9}));  // the last token always ends it
  EXPECT_EQ(replay_frames(0, 8, 4), (std::vector<int>{0, 4, 8}));
  EXPECT_EQ(replay_frames(0, 0, 3), (std::vector<int>{0}));
  EXPECT_TRUE(replay_frames(0, -1, 1).empty());
  EXPECT_EQ(replay_delay_cs(10, 1), 10);  // 10 tokens/s: 100 ms a frame
  EXPECT_EQ(replay_delay_cs(8, 1), 13);   // 125 ms rounds to 130
  EXPECT_EQ(replay_delay_cs(10, 3), 30);  // every third token at 10 tokens/s
  EXPECT_EQ(replay_delay_cs(120, 1), 2);  // GIF viewers honour 20 ms at the fastest
  EXPECT_EQ(replay_delay_cs(0.25f, 1), 400);
}
