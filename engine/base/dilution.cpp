#include "engine/base/dilution.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

namespace pvm {

HyperbolicFit fit_hyperbolic(const std::vector<double>& t, const std::vector<double>& y) {
  std::vector<double> T, Y;
  for (size_t i = 0; i < std::min(t.size(), y.size()); ++i)
    if (std::isfinite(t[i]) && std::isfinite(y[i])) T.push_back(t[i]), Y.push_back(y[i]);
  HyperbolicFit f;
  f.n = (int64_t)T.size();
  if (T.empty()) return f;
  double tmin = *std::min_element(T.begin(), T.end());
  auto sse_at = [&](double t0, double& c) {
    double gy = 0, gg = 0;
    for (size_t i = 0; i < T.size(); ++i) {
      double g = 1.0 / (T[i] + t0);
      gy += g * Y[i], gg += g * g;
    }
    c = gg > 0 ? gy / gg : 0;
    double e = 0;
    for (size_t i = 0; i < T.size(); ++i) {
      double r = Y[i] - c / (T[i] + t0);
      e += r * r;
    }
    return e;
  };
  // t0 > -min(t) keeps every denominator positive
  double lo = std::log(1e-3), hi = std::log(1e6), best = lo, best_e = std::numeric_limits<double>::infinity(), c = 0;
  for (int round = 0; round < 4; ++round) {
    const int n = 200;
    double step = (hi - lo) / n;
    for (int i = 0; i <= n; ++i) {
      double lt = lo + i * step, t0 = std::exp(lt);
      if (t0 + tmin <= 0) continue;
      double e = sse_at(t0, c);
      if (e < best_e) best_e = e, best = lt;
    }
    lo = best - 2 * step, hi = best + 2 * step;
  }
  f.t0 = std::exp(best);
  sse_at(f.t0, f.c);
  double mean = 0, sst = 0;
  for (double v : Y) mean += v;
  mean /= Y.size();
  for (double v : Y) sst += (v - mean) * (v - mean);
  f.r2 = sst > 0 ? 1 - best_e / sst : (best_e == 0 ? 1 : 0);
  return f;
}

PowerFit fit_power_law(const std::vector<double>& t, const std::vector<double>& y) {
  std::vector<double> X, Y;
  for (size_t i = 0; i < std::min(t.size(), y.size()); ++i)
    if (t[i] > 0 && y[i] > 0 && std::isfinite(t[i]) && std::isfinite(y[i]))
      X.push_back(std::log(t[i])), Y.push_back(std::log(y[i]));
  PowerFit f;
  f.n = (int64_t)X.size();
  if (X.size() < 2) return f;
  double mx = 0, my = 0;
  for (size_t i = 0; i < X.size(); ++i) mx += X[i], my += Y[i];
  mx /= X.size(), my /= Y.size();
  double sxx = 0, sxy = 0, syy = 0;
  for (size_t i = 0; i < X.size(); ++i)
    sxx += (X[i] - mx) * (X[i] - mx), sxy += (X[i] - mx) * (Y[i] - my), syy += (Y[i] - my) * (Y[i] - my);
  if (sxx <= 0) return f;
  double slope = sxy / sxx;
  f.k = -slope;
  f.a = std::exp(my - slope * mx);
  f.r2 = syy > 0 ? sxy * sxy / (sxx * syy) : 1;
  return f;
}

DilutionFit fit_dilution(const DilutionCurve& c, size_t max_points) {
  if (max_points == 0 || c.t.size() <= max_points) return {fit_hyperbolic(c.t, c.y), fit_power_law(c.t, c.y)};
  const size_t stride = c.t.size() / max_points;
  DilutionCurve s;
  for (size_t i = 0; i < c.t.size(); i += stride) s.t.push_back(c.t[i]), s.y.push_back(c.y[i]);
  return {fit_hyperbolic(s.t, s.y), fit_power_law(s.t, s.y)};
}

void DilutionCurves::add(int64_t step, const std::vector<float>& mass, const std::vector<float>& mass_nosink) {
  if (step < 0) return;
  if (step >= steps()) {
    const std::vector<double> zero(size_t(layers_ + 1), 0.0);
    sum_.resize(size_t(step + 1), zero), sum_ns_.resize(size_t(step + 1), zero), cnt_.resize(size_t(step + 1), zero);
  }
  const auto& ns = mass_nosink.empty() ? mass : mass_nosink;
  const int64_t n = std::min<int64_t>(int64_t(mass.size()), layers_);
  for (int64_t l = 0; l < n; ++l) {
    for (int64_t k : {l, layers_}) {
      sum_[size_t(step)][size_t(k)] += mass[size_t(l)];
      sum_ns_[size_t(step)][size_t(k)] += l < int64_t(ns.size()) ? ns[size_t(l)] : mass[size_t(l)];
      cnt_[size_t(step)][size_t(k)] += 1;
    }
  }
}

DilutionCurve DilutionCurves::curve(int64_t layer, bool nosink) const {
  const size_t k = size_t(layer == kMeanOfLayers ? layers_ : layer);
  DilutionCurve c;
  if (layer != kMeanOfLayers && (layer < 0 || layer >= layers_)) return c;
  const auto& sum = nosink ? sum_ns_ : sum_;
  for (size_t s = 0; s < cnt_.size(); ++s)
    if (cnt_[s][k] > 0) c.t.push_back(double(s) + 1), c.y.push_back(sum[s][k] / cnt_[s][k]);
  return c;
}

namespace {

// Continued fraction of the regularized incomplete beta function (modified Lentz).
double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  d = 1 / (std::fabs(d) < tiny ? tiny : d);
  double h = d;
  for (int m = 1; m <= 300; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d, c = 1 + aa / c;
    d = 1 / (std::fabs(d) < tiny ? tiny : d), c = std::fabs(c) < tiny ? tiny : c;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d, c = 1 + aa / c;
    d = 1 / (std::fabs(d) < tiny ? tiny : d), c = std::fabs(c) < tiny ? tiny : c;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < 1e-15) break;
  }
  return h;
}

// I_x(a, b).
double inc_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double lb = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return std::exp(lb) * beta_cf(a, b, x) / a;
  return 1 - std::exp(lb) * beta_cf(b, a, 1 - x) / b;
}

double student_t_cdf(double t, int dof) {
  const double v = dof, x = v / (v + t * t);
  const double tail = 0.5 * inc_beta(v / 2, 0.5, x);  // P(T > |t|)
  return t >= 0 ? 1 - tail : tail;
}

}  // namespace

double student_t_quantile(double p, int dof) {
  if (!(p > 0 && p < 1) || dof < 1) return NAN;
  if (p == 0.5) return 0;
  if (p < 0.5) return -student_t_quantile(1 - p, dof);
  double lo = 0, hi = 1;
  while (student_t_cdf(hi, dof) < p && hi < 1e12) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, dof) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

DilutionBand dilution_band(const std::vector<DilutionCurve>& answers, double level) {
  // position -> values of the answers there, in answer order
  std::map<double, std::vector<double>> at;
  for (const DilutionCurve& c : answers)
    for (size_t i = 0; i < std::min(c.t.size(), c.y.size()); ++i)
      if (std::isfinite(c.y[i])) at[c.t[i]].push_back(c.y[i]);
  DilutionBand b;
  for (const auto& [t, v] : at) {
    const double n = double(v.size());
    double mean = 0;
    for (double x : v) mean += x;
    mean /= n;
    double half = 0;
    if (v.size() > 1) {
      double ss = 0;
      for (double x : v) ss += (x - mean) * (x - mean);
      const double sd = std::sqrt(ss / (n - 1));
      half = student_t_quantile(0.5 + level / 2, int(v.size()) - 1) * sd / std::sqrt(n);
    }
    b.t.push_back(t), b.mean.push_back(mean), b.lo.push_back(mean - half), b.hi.push_back(mean + half);
    b.n.push_back(int64_t(v.size()));
  }
  return b;
}

}  // namespace pvm
