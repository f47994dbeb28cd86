#include "views/dilution_map_data.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace pvm::studio::dmap {

namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

uint32_t pack(float r, float g, float b) {
  auto c = [](float x) { return uint32_t(std::lround(std::clamp(x, 0.0f, 1.0f) * 255.0f)); };
  return c(r) | (c(g) << 8) | (c(b) << 16) | 0xff000000u;
}

uint32_t lerp_table(const float (*tab)[3], int n, float t) {
  if (!std::isfinite(t)) return kMissing;
  t = std::clamp(t, 0.0f, 1.0f) * float(n - 1);
  const int i = std::min(int(t), n - 2);
  const float f = t - float(i);
  return pack(tab[i][0] + (tab[i + 1][0] - tab[i][0]) * f, tab[i][1] + (tab[i + 1][1] - tab[i][1]) * f,
              tab[i][2] + (tab[i + 1][2] - tab[i][2]) * f);
}

int max_layers(const std::vector<TokenRec>& tokens, bool nosink) {
  int r = 0;
  for (const TokenRec& t : tokens) r = std::max(r, int(mass_of(t, nosink).size()));
  return r;
}

// Source columns of pixel column x: [x*cols/width, (x+1)*cols/width), at least one.
inline void bin(int x, int cols, int width, int* c0, int* c1) {
  *c0 = int(int64_t(x) * cols / width);
  *c1 = std::max(*c0 + 1, int(int64_t(x + 1) * cols / width));
}

// Shared reduction: value(t, l, &v) says whether position t has a value at layer l.
template <class Value>
Matrix reduce(int rows, int cols, int width, Value value) {
  Matrix m;
  if (rows == 0 || cols == 0) return m;
  if (width <= 0 || width > cols) width = cols;
  m.rows = rows, m.cols = width;
  m.v.assign(size_t(rows) * width, kNaN);
  std::vector<double> s(rows);
  std::vector<int> n(rows);
  for (int x = 0; x < width; ++x) {
    int c0, c1;
    bin(x, cols, width, &c0, &c1);
    std::fill(s.begin(), s.end(), 0.0), std::fill(n.begin(), n.end(), 0);
    for (int c = c0; c < c1; ++c)
      for (int r = 0; r < rows; ++r) {
        float v;
        if (value(c, r, &v) && std::isfinite(v)) s[r] += v, ++n[r];
      }
    for (int r = 0; r < rows; ++r)
      if (n[r]) m.v[size_t(r) * width + x] = float(s[r] / n[r]);
  }
  return m;
}
}  // namespace

Matrix layer_by_position(const std::vector<TokenRec>& tokens, bool nosink) {
  Matrix m;
  m.rows = max_layers(tokens, nosink);
  m.cols = m.rows ? int(tokens.size()) : 0;
  m.v.assign(size_t(m.rows) * m.cols, kNaN);
  for (int c = 0; c < m.cols; ++c) {
    const std::vector<float>& x = mass_of(tokens[c], nosink);
    for (int r = 0; r < int(x.size()); ++r) m.v[size_t(r) * m.cols + c] = x[r];
  }
  return m;
}

Matrix decimate_columns(const Matrix& m, int width) {
  if (width <= 0 || width >= m.cols) return m;
  return reduce(m.rows, m.cols, width, [&](int c, int r, float* v) {
    *v = m.at(r, c);
    return true;
  });
}

Matrix position_map(const std::vector<TokenRec>& tokens, bool nosink, int width) {
  return reduce(max_layers(tokens, nosink), int(tokens.size()), width, [&](int c, int r, float* v) {
    const std::vector<float>& x = mass_of(tokens[size_t(c)], nosink);
    if (r >= int(x.size())) return false;
    *v = x[size_t(r)];
    return true;
  });
}

Matrix position_map_diff(const std::vector<TokenRec>& baseline, const std::vector<TokenRec>& pvm, bool nosink,
                         int width) {
  if (baseline.empty() || pvm.empty()) return Matrix{};
  const int rows = std::max(max_layers(baseline, nosink), max_layers(pvm, nosink));
  const int cols = int(std::max(baseline.size(), pvm.size()));
  return reduce(rows, cols, width, [&](int c, int r, float* v) {
    if (c >= int(baseline.size()) || c >= int(pvm.size())) return false;
    const std::vector<float>& a = mass_of(baseline[size_t(c)], nosink);
    const std::vector<float>& b = mass_of(pvm[size_t(c)], nosink);
    if (r >= int(a.size()) || r >= int(b.size())) return false;
    *v = b[size_t(r)] - a[size_t(r)];
    return true;
  });
}

Matrix difference(const Matrix& a, const Matrix& b) {
  Matrix d;
  d.rows = std::max(a.rows, b.rows), d.cols = std::max(a.cols, b.cols);
  d.v.assign(size_t(d.rows) * d.cols, kNaN);
  for (int r = 0; r < d.rows; ++r)
    for (int c = 0; c < d.cols; ++c)
      if (r < a.rows && c < a.cols && r < b.rows && c < b.cols) d.v[size_t(r) * d.cols + c] = b.at(r, c) - a.at(r, c);
  return d;
}

// ---- layer x head ----

void HeadMeans::reset() {
  rows_ = cols_ = 0;
  sum_.clear(), n_.clear();
  counted_ = 0;
}

void HeadMeans::grow(int rows, int cols) {
  if (rows <= rows_ && cols <= cols_) return;
  const int R = std::max(rows, rows_), C = std::max(cols, cols_);
  std::vector<double> s(size_t(R) * C, 0.0);
  std::vector<uint32_t> n(s.size(), 0);
  for (int r = 0; r < rows_; ++r)
    for (int c = 0; c < cols_; ++c) s[size_t(r) * C + c] = sum_[size_t(r) * cols_ + c], n[size_t(r) * C + c] = n_[size_t(r) * cols_ + c];
  sum_.swap(s), n_.swap(n), rows_ = R, cols_ = C;
}

void HeadMeans::update(const std::vector<TokenRec>& tokens) {
  if (tokens.size() < counted_) reset();
  for (size_t i = counted_; i < tokens.size(); ++i) {
    const auto& mh = tokens[i].mass_heads;
    int cols = 0;
    for (const auto& h : mh) cols = std::max(cols, int(h.size()));
    grow(int(mh.size()), cols);
    for (size_t l = 0; l < mh.size(); ++l)
      for (size_t h = 0; h < mh[l].size(); ++h) {
        const float x = mh[l][h];
        if (!std::isfinite(x)) continue;
        sum_[l * size_t(cols_) + h] += x;
        ++n_[l * size_t(cols_) + h];
      }
  }
  counted_ = tokens.size();
}

Matrix HeadMeans::mean() const {
  Matrix m;
  if (rows_ == 0 || cols_ == 0) return m;
  m.rows = rows_, m.cols = cols_;
  m.v.assign(sum_.size(), kNaN);
  for (size_t i = 0; i < sum_.size(); ++i)
    if (n_[i]) m.v[i] = float(sum_[i] / n_[i]);
  return m;
}

Matrix layer_by_head(const std::vector<TokenRec>& tokens) {
  HeadMeans h;
  h.update(tokens);
  return h.mean();
}

// ---- colours ----

void range(const Matrix& m, float* lo, float* hi) {
  float a = std::numeric_limits<float>::infinity(), b = -a;
  for (float x : m.v)
    if (std::isfinite(x)) a = std::min(a, x), b = std::max(b, x);
  if (a > b) a = b = 0;
  *lo = a, *hi = b;
}

float max_abs(const Matrix& m) {
  float a = 0;
  for (float x : m.v)
    if (std::isfinite(x)) a = std::max(a, std::fabs(x));
  return a;
}

uint32_t sequential(float t) {
  static const float tab[][3] = {{0.267f, 0.005f, 0.329f}, {0.231f, 0.322f, 0.545f}, {0.128f, 0.567f, 0.551f},
                                 {0.369f, 0.789f, 0.383f}, {0.993f, 0.906f, 0.144f}};
  return lerp_table(tab, 5, t);
}

uint32_t diverging(float t) {
  static const float tab[][3] = {{0.020f, 0.188f, 0.380f}, {0.263f, 0.576f, 0.765f}, {0.969f, 0.969f, 0.969f},
                                 {0.839f, 0.376f, 0.302f}, {0.404f, 0.000f, 0.122f}};
  return lerp_table(tab, 5, t);
}

std::vector<uint32_t> to_rgba(const Matrix& m, bool diverge, float lo, float hi) {
  std::vector<uint32_t> px(m.v.size());
  const float span = hi > lo ? hi - lo : 1.0f;
  for (size_t i = 0; i < px.size(); ++i) {
    const float x = m.v[i];
    if (!std::isfinite(x)) {
      px[i] = kMissing;
      continue;
    }
    const float t = (x - lo) / span;
    px[i] = diverge ? diverging(t) : sequential(t);
  }
  return px;
}

int column_to_token(float x, float width, int cols) {
  if (cols <= 0 || width <= 0 || x < 0 || x >= width) return -1;
  return std::clamp(int(x / width * float(cols)), 0, cols - 1);
}

std::string to_csv(const Matrix& m, const std::string& row_name, const std::string& col_prefix) {
  std::string s = row_name;
  char buf[32];
  for (int c = 0; c < m.cols; ++c) s += "," + col_prefix + std::to_string(c);
  s += "\n";
  for (int r = 0; r < m.rows; ++r) {
    s += std::to_string(r);
    for (int c = 0; c < m.cols; ++c) {
      s += ",";
      const float x = m.at(r, c);
      if (std::isfinite(x)) {
        std::snprintf(buf, sizeof buf, "%.9g", double(x));
        s += buf;
      }
    }
    s += "\n";
  }
  return s;
}

}  // namespace pvm::studio::dmap
