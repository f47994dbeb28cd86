// Visual signal dilution, the analysis: how the attention a generated token pays to the image
// (its "visual mass", engine/probes.h) falls with the position t of the token in the answer.
// Per position: the mass averaged over answers and over layers (or of one layer); then two fits of
// the decay, c / (t + t0) and a * t^-k (docs/MODEL.md, "Dilution").
//
// Torch-free on purpose: `pvm dilution` (engine/dilution.h) and the studio's Dilution view
// (views/view_dilution.cpp) both compute their curves and fits here, so they give the same numbers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pvm {

// Points with a non-finite value are skipped by both fits.
struct HyperbolicFit {
  double c = 0, t0 = 0, r2 = 0;  // y ~ c / (t + t0), least squares; r2 on y
  int64_t n = 0;
};
// Grid over t0 (log-spaced 1e-3 .. 1e6, refined around the best) with the closed-form c for each.
HyperbolicFit fit_hyperbolic(const std::vector<double>& t, const std::vector<double>& y);
struct PowerFit {
  double a = 0, k = 0, r2 = 0;  // y ~ a * t^-k by least squares on (log t, log y); r2 in log space
  int64_t n = 0;
};
// Uses the points with t > 0 and y > 0.
PowerFit fit_power_law(const std::vector<double>& t, const std::vector<double>& y);

// A curve: positions t (1-based: t = step + 1) that have data, and the mean there.
struct DilutionCurve {
  std::vector<double> t, y;
};

struct DilutionFit {
  HyperbolicFit hyperbolic;
  PowerFit power;
};
// Both fits of a curve. max_points > 0 fits every k-th point only (k = size / max_points), which
// keeps the fit of a 16k-token answer cheap enough for the studio's UI thread.
DilutionFit fit_dilution(const DilutionCurve& c, size_t max_points = 0);

// Sums of the visual mass per (layer, step) over any number of answers. Add the tokens of each
// answer in order; means are taken at the end, so the order of answers does not matter beyond
// floating-point rounding.
class DilutionCurves {
 public:
  static constexpr int64_t kMeanOfLayers = -1;

  explicit DilutionCurves(int64_t layers) : layers_(layers) {}
  // One generated token at 0-based `step`: mass [layers] and the same without sink tokens
  // (empty: taken equal to mass). Layers past `layers` are ignored.
  void add(int64_t step, const std::vector<float>& mass, const std::vector<float>& mass_nosink);

  int64_t layers() const { return layers_; }
  int64_t steps() const { return int64_t(cnt_.size()); }  // 1 + the largest step added
  // Mean at each position with data, of one layer or (kMeanOfLayers) of every layer's values.
  DilutionCurve curve(int64_t layer, bool nosink) const;

 private:
  int64_t layers_;
  // [step][layer or layers_ = all layers]
  std::vector<std::vector<double>> sum_, sum_ns_, cnt_;
};

// Two-sided Student t quantile: t such that P(T <= t) = p for `dof` degrees of freedom (p in (0,1),
// dof >= 1), by bisection on the CDF (regularized incomplete beta); 1e-10 relative accuracy.
double student_t_quantile(double p, int dof);

// Mean over answers at each position, with a confidence band: per position t, the answers that
// reach t give one value each (their curve's y at t); mean +- q * sd / sqrt(n), q the Student t
// quantile of (1 + level) / 2 with n - 1 degrees of freedom (lo = hi = mean when n = 1).
// The studio's batch view draws it; its mean equals DilutionCurves' mean of the same answers when
// every answer has the same layers.
struct DilutionBand {
  std::vector<double> t, mean, lo, hi;
  std::vector<int64_t> n;  // answers at each position
};
DilutionBand dilution_band(const std::vector<DilutionCurve>& answers, double level = 0.95);

}  // namespace pvm
