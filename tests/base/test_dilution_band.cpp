// The batch view's statistics (engine/base/dilution.h): the Student t quantile against published
// values, and the 95% band over answers against a direct computation and DilutionCurves' mean.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/base/dilution.h"

using namespace pvm;

TEST(StudentT, QuantilesMatchPublishedValues) {
  // t_{0.975, dof} (and one t_{0.995}) to 9 digits, from standard tables (R: qt(0.975, dof)).
  const struct {
    double p;
    int dof;
    double t;
  } cases[] = {{0.975, 1, 12.7062047}, {0.975, 2, 4.30265273}, {0.975, 3, 3.18244631}, {0.975, 4, 2.77644511},
               {0.975, 5, 2.57058184}, {0.975, 10, 2.22813885}, {0.975, 30, 2.04227246}, {0.975, 100, 1.98397152},
               {0.995, 3, 5.84090931}};
  for (const auto& c : cases) EXPECT_NEAR(student_t_quantile(c.p, c.dof), c.t, 2e-7 * c.t) << "p " << c.p << " dof " << c.dof;
  EXPECT_NEAR(student_t_quantile(0.025, 4), -2.77644511, 1e-6);  // symmetric
  // Large dof: the normal quantile plus the first Cornish-Fisher term, (z^3 + z) / (4 dof).
  const double z = 1.959963984540054, v = 1e6;
  EXPECT_NEAR(student_t_quantile(0.975, int(v)), z + (z * z * z + z) / (4 * v), 1e-9);
  EXPECT_EQ(student_t_quantile(0.5, 7), 0.0);
  EXPECT_TRUE(std::isnan(student_t_quantile(1.0, 3)));
  EXPECT_TRUE(std::isnan(student_t_quantile(0.9, 0)));
}

TEST(DilutionBand, MeanAndHalfWidthPerPosition) {
  // Three answers; the third is one token shorter.
  std::vector<DilutionCurve> a(3);
  a[0] = {{1, 2, 3}, {0.5, 0.4, 0.3}};
  a[1] = {{1, 2, 3}, {0.7, 0.2, 0.1}};
  a[2] = {{1, 2}, {0.6, 0.3}};
  const DilutionBand b = dilution_band(a, 0.95);
  ASSERT_EQ(b.t.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    std::vector<double> v;
    for (const auto& c : a)
      if (i < c.y.size()) v.push_back(c.y[i]);
    double m = 0, ss = 0;
    for (double x : v) m += x;
    m /= v.size();
    for (double x : v) ss += (x - m) * (x - m);
    const double half = student_t_quantile(0.975, int(v.size()) - 1) * std::sqrt(ss / (v.size() - 1)) / std::sqrt(double(v.size()));
    EXPECT_EQ(b.t[i], double(i + 1));
    EXPECT_EQ(b.n[i], int64_t(v.size()));
    EXPECT_NEAR(b.mean[i], m, 1e-15);
    EXPECT_NEAR(b.hi[i] - b.mean[i], half, 1e-12);
    EXPECT_NEAR(b.mean[i] - b.lo[i], half, 1e-12);
  }
  // Position 1: values 0.5, 0.7, 0.6 -> sd 0.1, half = 4.30265273 * 0.1 / sqrt(3).
  EXPECT_NEAR(b.hi[0] - b.mean[0], 4.30265273 * 0.1 / std::sqrt(3.0), 1e-8);
  // One answer: no spread to estimate, the band is the line.
  const DilutionBand one = dilution_band({a[0]});
  for (size_t i = 0; i < one.t.size(); ++i) EXPECT_EQ(one.lo[i], one.hi[i]);
}

TEST(DilutionBand, MeanEqualsDilutionCurvesOverAnswers) {
  // Per answer the mean of its layers; over answers the mean of those = DilutionCurves' mean of layers.
  const int L = 3, answers = 4, steps = 5;
  DilutionCurves all(L);
  std::vector<DilutionCurve> per;
  for (int a = 0; a < answers; ++a) {
    DilutionCurves one(L);
    for (int s = 0; s < steps; ++s) {
      std::vector<float> m(L);
      for (int l = 0; l < L; ++l) m[l] = float(0.1 + 0.01 * a + 0.2 / (s + 1 + l));
      one.add(s, m, {});
      all.add(s, m, {});
    }
    per.push_back(one.curve(DilutionCurves::kMeanOfLayers, false));
  }
  const DilutionBand b = dilution_band(per);
  const DilutionCurve c = all.curve(DilutionCurves::kMeanOfLayers, false);
  ASSERT_EQ(b.t.size(), c.t.size());
  for (size_t i = 0; i < c.t.size(); ++i) EXPECT_NEAR(b.mean[i], c.y[i], 1e-12);
}
