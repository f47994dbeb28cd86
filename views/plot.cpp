#include "views/plot.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "imgui_stdlib.h"
#include "views/capture.h"
#include "views/gl_texture.h"
#include "views/parallel.h"
#include "engine/base/log_sink.h"

namespace pvm::studio {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Fixed colours tuned for ImGui's dark theme; the plot must stay readable in exported PNGs.
constexpr ImU32 kPlotBg = IM_COL32(22, 24, 28, 255);
constexpr ImU32 kGridMajor = IM_COL32(255, 255, 255, 38);
constexpr ImU32 kGridMinor = IM_COL32(255, 255, 255, 14);
constexpr ImU32 kBorder = IM_COL32(255, 255, 255, 90);
constexpr ImU32 kText = IM_COL32(225, 228, 232, 255);
constexpr ImU32 kTextDim = IM_COL32(150, 155, 162, 255);
constexpr ImU32 kHoverLine = IM_COL32(255, 255, 255, 110);
constexpr ImU32 kCursorLine = IM_COL32(255, 170, 40, 230);
constexpr float kTickLen = 5.0f;

ImU32 hsv(float h, float s, float v, float a = 1.0f) {
  float r, g, b;
  ImGui::ColorConvertHSVtoRGB(h, s, v, r, g, b);
  return ImGui::ColorConvertFloat4ToU32(ImVec4(r, g, b, a));
}

ImU32 with_alpha(ImU32 c, float a) {
  ImVec4 v = ImGui::ColorConvertU32ToFloat4(c);
  v.w *= a;
  return ImGui::ColorConvertFloat4ToU32(v);
}

bool in_rect(ImVec2 p, ImVec2 a, ImVec2 b) { return p.x >= a.x && p.x < b.x && p.y >= a.y && p.y < b.y; }

// Shortest label that tells neighbouring ticks apart at this step.
std::string format_linear(double v, double step) {
  char buf[48];
  double a = std::fabs(v);
  if (a < step * 1e-6) return "0";
  if (a >= 1e6 || a < 1e-4) {
    int digits = std::max(1, int(std::ceil(std::log10(a / step) + 1e-9)) + 1);
    std::snprintf(buf, sizeof buf, "%.*g", std::min(digits, 10), v);
  } else {
    int decimals = std::max(0, int(std::ceil(-std::log10(step) - 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*f", std::min(decimals, 10), v);
  }
  return buf;
}

// m * 10^k for the log axis: plain numbers in a readable band, else "2e7".
std::string format_pow(int m, int k) {
  char buf[48];
  if (k >= 0 && k <= 5)
    std::snprintf(buf, sizeof buf, "%.0f", m * std::pow(10.0, k));
  else if (k < 0 && k >= -4)
    std::snprintf(buf, sizeof buf, "%.*f", -k, m * std::pow(10.0, k));
  else
    std::snprintf(buf, sizeof buf, "%de%d", m, k);
  return buf;
}

std::string format_value(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.5g", v);
  return buf;
}

double nice_step(double range, double n) {
  double raw = range / std::max(1.0, n);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
}

// ImGui has no rotated text: lay the text out horizontally, then turn its vertices 90 degrees
// counter-clockwise so it reads bottom-to-top, centred on `center`. The horizontal layout is put
// where it is fully on screen, since ImGui culls glyphs outside the display before we rotate.
void add_text_vertical(ImDrawList* dl, ImVec2 center, ImU32 col, const char* text) {
  const ImVec2 ts = ImGui::CalcTextSize(text);
  const ImVec2 disp = ImGui::GetIO().DisplaySize;
  const ImVec2 lp(std::clamp(center.x - ts.x * 0.5f, 0.0f, std::max(0.0f, disp.x - ts.x)),
                  std::clamp(center.y - ts.y * 0.5f, 0.0f, std::max(0.0f, disp.y - ts.y)));
  const ImVec2 lc(lp.x + ts.x * 0.5f, lp.y + ts.y * 0.5f);
  dl->PushClipRectFullScreen();
  const int v0 = dl->VtxBuffer.Size;
  dl->AddText(lp, col, text);
  for (int i = v0; i < dl->VtxBuffer.Size; ++i) {
    ImVec2& p = dl->VtxBuffer[i].pos;
    const float dx = p.x - lc.x, dy = p.y - lc.y;
    p = ImVec2(center.x + dy, center.y - dx);
  }
  dl->PopClipRect();
}

// Dashes measured along the polyline so the pattern survives decimation.
void add_dashed_polyline(ImDrawList* dl, const ImVec2* pts, int n, ImU32 col, float thickness) {
  const float on = 7.0f, off = 5.0f;
  float phase = 0.0f;  // distance into the current on+off period
  for (int i = 0; i + 1 < n; ++i) {
    ImVec2 a = pts[i], b = pts[i + 1];
    float dx = b.x - a.x, dy = b.y - a.y;
    float len = std::sqrt(dx * dx + dy * dy);
    float done = 0.0f;
    while (done < len) {
      float left_in_phase = phase < on ? on - phase : on + off - phase;
      float step = std::min(left_in_phase, len - done);
      if (phase < on) {
        ImVec2 p(a.x + dx * done / len, a.y + dy * done / len);
        ImVec2 q(a.x + dx * (done + step) / len, a.y + dy * (done + step) / len);
        dl->AddLine(p, q, col, thickness);
      }
      done += step;
      phase += step;
      if (phase >= on + off) phase -= on + off;
    }
  }
}

}  // namespace

ImU32 plot_palette(int i) {
  static const ImU32 kPalette[] = {
      IM_COL32(86, 180, 233, 255),  IM_COL32(230, 159, 0, 255),   IM_COL32(0, 200, 140, 255),
      IM_COL32(240, 228, 66, 255),  IM_COL32(213, 94, 0, 255),    IM_COL32(204, 121, 167, 255),
      IM_COL32(150, 150, 255, 255), IM_COL32(170, 220, 120, 255), IM_COL32(255, 120, 120, 255),
      IM_COL32(200, 200, 200, 255)};
  const int n = int(sizeof kPalette / sizeof kPalette[0]);
  return kPalette[((i % n) + n) % n];
}

ImU32 plot_ramp(float t) {
  t = std::clamp(t, 0.0f, 1.0f);
  return hsv(0.62f * (1.0f - t), 0.72f, 0.98f);  // blue (0) -> red (1), bright on dark
}

// ---- axis ----

double Plot::Axis::fwd(double v) const {
  if (scale == AxisScale::Log10) return v > 0 ? std::log10(v) : kNaN;
  return v;
}

double Plot::Axis::inv(double t) const { return scale == AxisScale::Log10 ? std::pow(10.0, t) : t; }

// ---- content ----

Plot::~Plot() = default;

Plot::Plot(std::string id) : id_(std::move(id)) {
  export_base_ = id_;
  for (char& c : export_base_)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
}

void Plot::set_axis_labels(std::string x, std::string y) {
  x_.label = std::move(x);
  y_.label = std::move(y);
}

void Plot::set_raster(bool on) {
  raster_ = on;
  data_changed();
}

void Plot::set_x_scale(AxisScale s) {
  if (x_.scale == s) return;
  x_.scale = s;
  for (Entry& e : series_) e.transformed = false;
  auto_fit_ = true;  // the old view means nothing in the new units
  data_changed();
}

void Plot::set_y_scale(AxisScale s) {
  if (y_.scale == s) return;
  y_.scale = s;
  for (Entry& e : series_) e.transformed = false;
  auto_fit_ = true;
  data_changed();
}

int Plot::add_series(PlotSeries s) {
  Entry e;
  e.color = s.color ? s.color : plot_palette(int(series_.size()));
  if (s.thickness <= 0) s.thickness = 1.0f;
  e.sorted = std::is_sorted(s.x.begin(), s.x.end());
  e.s = std::move(s);
  series_.push_back(std::move(e));
  data_changed();
  return int(series_.size()) - 1;
}

void Plot::clear_series() {
  series_.clear();
  bands_.clear();
  data_changed();
}

void Plot::add_band(int lo_series, int hi_series, ImU32 fill) {
  if (lo_series < 0 || hi_series < 0 || lo_series >= int(series_.size()) || hi_series >= int(series_.size())) return;
  bands_.push_back({lo_series, hi_series, fill});
}

void Plot::draw_bands(ImDrawList* dl, const Frame& f) {
  // Adjacent quads share edges: anti-aliased fill would draw a faint seam on every one.
  const ImDrawListFlags flags = dl->Flags;
  dl->Flags &= ~ImDrawListFlags_AntiAliasedFill;
  for (const Band& b : bands_) {
    Entry& lo = series_[size_t(b.lo)];
    Entry& hi = series_[size_t(b.hi)];
    if (!lo.transformed) transform(lo);
    if (!hi.transformed) transform(hi);
    const size_t n = std::min(lo.tx.size(), hi.tx.size());
    bool have = false;
    float px = 0, plo = 0, phi = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(lo.tx[i]) || !std::isfinite(lo.ty[i]) || !std::isfinite(hi.ty[i])) {
        have = false;  // a gap in the data is a gap in the band
        continue;
      }
      const float x = x_px(f, lo.tx[i]), ylo = y_px(f, lo.ty[i]), yhi = y_px(f, hi.ty[i]);
      if (have && x - px < 1.0f && i + 1 < n) continue;  // one quad per pixel column
      if (have && !(x < f.p0.x && px < f.p0.x) && !(x > f.p1.x && px > f.p1.x))
        dl->AddQuadFilled(ImVec2(px, plo), ImVec2(x, ylo), ImVec2(x, yhi), ImVec2(px, phi), b.fill);
      px = x, plo = ylo, phi = yhi, have = true;
    }
  }
  dl->Flags = flags;
}

PlotSeries& Plot::edit_series(size_t i) {
  // The caller may change x, so re-check the order on the next draw.
  series_[i].sorted = false;
  series_[i].transformed = false;
  resort_check_ = true;
  data_changed();
  return series_[i].s;
}

void Plot::data_changed() { ++data_version_; }

// ---- view ----

void Plot::transform(Entry& e) const {
  const size_t n = std::min(e.s.x.size(), e.s.y.size());
  e.tx.resize(n);
  e.ty.resize(n);
  for (size_t i = 0; i < n; ++i) {
    e.tx[i] = float(x_.fwd(e.s.x[i]));
    e.ty[i] = float(y_.fwd(e.s.y[i]));
  }
  e.gaps = false;
  for (size_t i = 0; i < n && !e.gaps; ++i) e.gaps = !std::isfinite(e.tx[i]) || !std::isfinite(e.ty[i]);
  e.transformed = true;
}

bool Plot::data_bounds(bool is_x, double* lo, double* hi) {
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  for (Entry& e : series_) {
    if (!e.s.visible) continue;
    if (!e.transformed) transform(e);
    for (float t : is_x ? e.tx : e.ty) {
      if (!std::isfinite(t)) continue;
      mn = std::min(mn, t);
      mx = std::max(mx, t);
    }
  }
  if (!(mn <= mx)) return false;
  *lo = mn;
  *hi = mx;
  return true;
}

void Plot::fit() {
  fit_now();
  auto_fit_ = true;  // follow the data again (it may still grow) until the user zooms or pans
}

void Plot::fit_now() {
  double lo, hi;
  if (data_bounds(true, &lo, &hi)) {
    if (hi - lo < 1e-12) lo -= 0.5, hi += 0.5;
    x_.lo = lo, x_.hi = hi;
  } else {
    x_.lo = 0, x_.hi = 1;
  }
  if (data_bounds(false, &lo, &hi)) {
    if (hi - lo < 1e-12) lo -= 0.5, hi += 0.5;
    double pad = 0.05 * (hi - lo);  // lines on the border are hard to read
    y_.lo = lo - pad, y_.hi = hi + pad;
  } else {
    y_.lo = 0, y_.hi = 1;
  }
}

void Plot::set_view(double x0, double x1, double y0, double y1) {
  x_.lo = x_.fwd(x0), x_.hi = x_.fwd(x1);
  y_.lo = y_.fwd(y0), y_.hi = y_.fwd(y1);
  if (!std::isfinite(x_.lo) || !std::isfinite(x_.hi) || x_.hi <= x_.lo) x_.lo = 0, x_.hi = 1;
  if (!std::isfinite(y_.lo) || !std::isfinite(y_.hi) || y_.hi <= y_.lo) y_.lo = 0, y_.hi = 1;
  auto_fit_ = false;
}

ImVec2 Plot::to_screen(double x, double y) const {
  const double fx = (x_.fwd(x) - x_.lo) / (x_.hi - x_.lo), fy = (y_.fwd(y) - y_.lo) / (y_.hi - y_.lo);
  return ImVec2(float(area_min_.x + fx * (area_max_.x - area_min_.x)), float(area_max_.y - fy * (area_max_.y - area_min_.y)));
}

void Plot::view(double* x0, double* x1, double* y0, double* y1) const {
  *x0 = x_.inv(x_.lo), *x1 = x_.inv(x_.hi);
  *y0 = y_.inv(y_.lo), *y1 = y_.inv(y_.hi);
}

// ---- decimation ----

// One pass over the visible index range: consecutive points falling into the same pixel column
// collapse to first, min, max, last (fewer when the column is flatter than a pixel). The result
// is at most ~4 points per column whatever the data length.
void Plot::decimate(Entry& e, float w, float h) const {
  e.pts.clear();
  e.run_starts.clear();
  const size_t n = std::min(e.s.x.size(), e.s.y.size());
  if (n == 0 || w <= 0 || h <= 0) return;
  const double xs = w / (x_.hi - x_.lo), ys = h / (y_.hi - y_.lo);
  const float ylim = 50.0f * h;  // keep far-off points finite for the rasterizer

  size_t i0 = 0, i1 = n;
  if (e.sorted) {  // only the visible range plus one neighbour each side (lines leave the area)
    const float* xb = e.s.x.data();
    double vlo = x_.inv(x_.lo), vhi = x_.inv(x_.hi);
    i0 = size_t(std::lower_bound(xb, xb + n, float(vlo)) - xb);
    i1 = size_t(std::upper_bound(xb, xb + n, float(vhi)) - xb);
    i0 = i0 > 0 ? i0 - 1 : 0;
    i1 = std::min(n, i1 + 1);
  }

  bool have = false, new_run = true;
  int col = 0;
  ImVec2 first, last, mn, mx;
  bool min_before_max = true;
  auto emit = [&](ImVec2 p) {
    if (new_run) {
      e.run_starts.push_back(uint32_t(e.pts.size()));
      new_run = false;
    } else {
      const ImVec2& q = e.pts.back();
      if (std::fabs(q.x - p.x) < 0.25f && std::fabs(q.y - p.y) < 0.25f) return;
    }
    e.pts.push_back(p);
  };
  auto flush = [&]() {
    if (!have) return;
    emit(first);
    if (mx.y - mn.y >= 1.0f) {
      const float cx = col + 0.5f;
      ImVec2 a(cx, min_before_max ? mn.y : mx.y), b(cx, min_before_max ? mx.y : mn.y);
      emit(a);
      emit(b);
      emit(last);
    } else if (last.x - first.x >= 1.0f) {
      emit(last);
    }
    have = false;
  };
  auto end_run = [&]() {
    if (have) {
      flush();
      if (!e.pts.empty() && e.pts.back().x != last.x) emit(last);
    }
    new_run = true;
  };

  const float* txs = e.tx.data();
  const float* tys = e.ty.data();
  auto to_screen = [&](size_t i) {
    return ImVec2(float((txs[i] - x_.lo) * xs), std::clamp(float(h - (tys[i] - y_.lo) * ys), -ylim, h + ylim));
  };

  if (e.sorted && !e.gaps && i1 - i0 > size_t(2 * w)) {
    // Fast path (dense, sorted, no gaps): find each column's end with a galloping search over x
    // and its extremes with a tight loop over y, instead of mapping every point to the screen.
    const double inv_xs = 1.0 / xs;
    size_t i = i0;
    while (i < i1) {
      const ImVec2 p = to_screen(i);
      const int c = int(std::floor(p.x));
      const float bound = float(x_.lo + (c + 1) * inv_xs);  // x where the next column starts
      size_t lo = i + 1, hi = i + 1, step = 1;
      while (hi < i1 && txs[hi] < bound) lo = hi + 1, hi += step, step <<= 1;
      const size_t end = size_t(std::lower_bound(txs + lo, txs + std::min(hi, i1), bound) - txs);
      size_t imin = i, imax = i;
      float ymin = tys[i], ymax = tys[i];
      for (size_t k = i + 1; k < end; ++k) {
        const float v = tys[k];
        if (v < ymin) ymin = v, imin = k;
        if (v > ymax) ymax = v, imax = k;
      }
      emit(p);
      if ((ymax - ymin) * ys >= 1.0) {
        const float cx = c + 0.5f;
        const size_t ka = std::min(imin, imax), kb = std::max(imin, imax);
        emit(ImVec2(cx, to_screen(ka).y));
        emit(ImVec2(cx, to_screen(kb).y));
      }
      if (end - 1 != i) emit(to_screen(end - 1));
      i = end;
    }
  } else {
  for (size_t i = i0; i < i1; ++i) {
    const double tx = txs[i], ty = tys[i];
    if (!std::isfinite(tx) || !std::isfinite(ty)) {  // NaN, or <= 0 on a log axis: a gap
      end_run();
      continue;
    }
    ImVec2 p(float((tx - x_.lo) * xs), std::clamp(float(h - (ty - y_.lo) * ys), -ylim, h + ylim));
    int c = int(std::floor(p.x));
    if (have && c == col) {
      if (p.y < mn.y) mn = p, min_before_max = false;  // screen y grows downwards: min is the top
      if (p.y > mx.y) mx = p, min_before_max = true;
      last = p;
      continue;
    }
    if (have) {
      flush();
      // Remember the column's last point; the next column's first point continues the line.
    }
    have = true;
    col = c;
    first = last = mn = mx = p;
    min_before_max = true;
  }
  end_run();
  }  // slow path

  // The neighbours outside the view can be millions of pixels away when zoomed in: pull run ends
  // back to just outside the area along their segment.
  for (size_t r = 0; r < e.run_starts.size(); ++r) {
    size_t s = e.run_starts[r];
    size_t t = r + 1 < e.run_starts.size() ? e.run_starts[r + 1] : e.pts.size();
    if (t - s < 2) continue;
    auto pull = [&](ImVec2& out, const ImVec2& in, float xb) {
      if (in.x == out.x) return;
      float f = (xb - in.x) / (out.x - in.x);
      out = ImVec2(xb, in.y + (out.y - in.y) * f);
    };
    if (e.pts[s].x < -2.0f && e.pts[s + 1].x >= -2.0f) pull(e.pts[s], e.pts[s + 1], -2.0f);
    if (e.pts[t - 1].x > w + 2.0f && e.pts[t - 2].x <= w + 2.0f) pull(e.pts[t - 1], e.pts[t - 2], w + 2.0f);
  }
}

// Decimated runs of every visible series into the CPU canvas, highlighted series last and on
// top, then one texture upload.
void Plot::rasterize(float pw, float ph) {
  const ImVec2 sc = ImGui::GetIO().DisplayFramebufferScale;
  const int w = std::max(1, int(std::lround(pw * sc.x))), h = std::max(1, int(std::lround(ph * sc.y)));
  canvas_.reset(w, h, kPlotBg);
  // Runs in framebuffer pixels, in drawing order; the buffer is sized first so pointers stay valid.
  size_t total = 0;
  for (const Entry& e : series_)
    if (e.s.visible) total += e.pts.size();
  raster_pts_.resize(total);
  std::vector<RasterLine> lines;
  size_t at = 0;
  auto add_entry = [&](const Entry& e, bool highlight, bool dim) {
    const ImU32 col = dim ? with_alpha(e.color, 0.22f) : e.color;
    const float th = (e.s.thickness + (highlight ? 1.0f : 0.0f)) * sc.x;
    for (size_t r = 0; r < e.run_starts.size(); ++r) {
      const size_t a = e.run_starts[r], b = r + 1 < e.run_starts.size() ? e.run_starts[r + 1] : e.pts.size();
      for (size_t i = a; i < b; ++i) raster_pts_[at + i - a] = ImVec2(e.pts[i].x * sc.x, e.pts[i].y * sc.y);
      lines.push_back({raster_pts_.data() + at, int(b - a), col, th, e.s.dashed});
      at += b - a;
    }
  };
  for (int i = 0; i < int(series_.size()); ++i)
    if (series_[i].s.visible && i != legend_hover_) add_entry(series_[i], false, legend_hover_ >= 0);
  if (legend_hover_ >= 0) add_entry(series_[legend_hover_], true, false);
  canvas_.draw(lines);
  if (!texture_) texture_ = std::make_unique<CpuTexture>();
  texture_->upload(canvas_.width(), canvas_.height(), canvas_.pixels());
}

// ---- ticks ----

std::vector<PlotTick> compute_ticks(AxisScale scale, double t_lo, double t_hi, float pixels, float spacing) {
  std::vector<PlotTick> out;
  const double range = t_hi - t_lo;
  if (!(range > 0) || pixels < 4) return out;
  auto linear = [&](double lo, double hi, double n, bool to_log) {
    double step = nice_step(hi - lo, n);
    double minor = step / (std::fabs(step / std::pow(10.0, std::floor(std::log10(step))) - 2) < 0.1 ? 4 : 5);
    long long k0 = (long long)std::ceil(lo / minor - 1e-9), k1 = (long long)std::floor(hi / minor + 1e-9);
    if (k1 - k0 > 2000) return;
    for (long long k = k0; k <= k1; ++k) {
      double v = k * minor;
      double r = v / step;
      bool major = std::fabs(r - std::round(r)) < 1e-6;
      double t = to_log ? (v > 0 ? std::log10(v) : kNaN) : v;
      if (!std::isfinite(t)) continue;
      out.push_back({t, major, major ? format_linear(v, step) : std::string()});
    }
  };
  if (scale == AxisScale::Linear) {
    linear(t_lo, t_hi, pixels / spacing, false);
    return out;
  }
  // log10: decades, thinned when crowded; 2..9 minors when a decade is wide enough.
  const double px_per_decade = pixels / range;
  const long long d0 = (long long)std::ceil(t_lo - 1e-9), d1 = (long long)std::floor(t_hi + 1e-9);
  if (d1 - d0 < 1) {  // less than two decade lines visible: linear ticks on the values
    linear(std::pow(10.0, t_lo), std::pow(10.0, t_hi), pixels / spacing, true);
    return out;
  }
  const long long every = std::max(1LL, (long long)std::ceil(spacing / px_per_decade));
  const bool minors = every == 1 && px_per_decade > 45;
  const bool label_25 = every == 1 && px_per_decade > 4.5 * spacing;
  for (long long d = (long long)std::floor(t_lo); d <= d1; ++d) {
    if (d >= d0 && d % every == 0) out.push_back({double(d), true, format_pow(1, int(d))});
    if (!minors) continue;
    for (int m = 2; m <= 9; ++m) {
      double t = d + std::log10(double(m));
      if (t < t_lo || t > t_hi) continue;
      bool lab = label_25 && (m == 2 || m == 5);
      out.push_back({t, false, lab ? format_pow(m, int(d)) : std::string()});
    }
  }
  return out;
}

// ---- drawing ----

void Plot::draw_series(ImDrawList* dl, const Entry& e, ImVec2 origin, bool highlight, bool dim) const {
  ImU32 col = dim ? with_alpha(e.color, 0.22f) : e.color;
  // Integer widths keep ImGui on its cheap textured anti-aliased line path.
  float th = std::round(e.s.thickness + (highlight ? 1.0f : 0.0f));
  static std::vector<ImVec2> buf;  // UI thread only; reused to avoid per-frame allocation
  for (size_t r = 0; r < e.run_starts.size(); ++r) {
    size_t s = e.run_starts[r];
    size_t t = r + 1 < e.run_starts.size() ? e.run_starts[r + 1] : e.pts.size();
    buf.resize(t - s);
    for (size_t i = s; i < t; ++i) buf[i - s] = ImVec2(e.pts[i].x + origin.x, e.pts[i].y + origin.y);
    if (buf.size() == 1) {
      dl->AddCircleFilled(buf[0], th + 0.5f, col, 8);
    } else if (e.s.dashed) {
      add_dashed_polyline(dl, buf.data(), int(buf.size()), col, th);
    } else {
      dl->AddPolyline(buf.data(), int(buf.size()), col, ImDrawFlags_None, th);
    }
  }
}

void Plot::draw_hover(ImDrawList* dl, ImVec2 p0, ImVec2 p1, float mouse_x) {
  const float pw = p1.x - p0.x, ph = p1.y - p0.y;
  const double mt = x_.lo + (mouse_x - p0.x) / pw * (x_.hi - x_.lo);
  const ImVec2 mouse = ImGui::GetIO().MousePos;
  dl->AddLine(ImVec2(mouse_x, p0.y), ImVec2(mouse_x, p1.y), kHoverLine, 1.0f);

  struct Hit {
    int series;
    size_t index;
    ImVec2 pt;
    float dist;
  };
  std::vector<Hit> hits;
  for (int si = 0; si < int(series_.size()); ++si) {
    const Entry& e = series_[si];
    const size_t n = std::min(e.s.x.size(), e.s.y.size());
    if (!e.s.visible || n == 0) continue;
    size_t best = n;
    double bd = std::numeric_limits<double>::infinity();
    auto consider = [&](size_t i) {
      double d = std::fabs(x_.fwd(e.s.x[i]) - mt);
      if (d < bd && std::isfinite(y_.fwd(e.s.y[i]))) bd = d, best = i;
    };
    if (e.sorted) {
      const float* xb = e.s.x.data();
      size_t i = size_t(std::lower_bound(xb, xb + n, float(x_.inv(mt))) - xb);
      for (size_t j = (i > 2 ? i - 2 : 0); j < std::min(n, i + 2); ++j) consider(j);
    } else {
      for (size_t i = 0; i < n; ++i) consider(i);
    }
    if (best == n) continue;
    ImVec2 pt(float(p0.x + (x_.fwd(e.s.x[best]) - x_.lo) / (x_.hi - x_.lo) * pw),
              float(p1.y - (y_.fwd(e.s.y[best]) - y_.lo) / (y_.hi - y_.lo) * ph));
    if (!in_rect(pt, ImVec2(p0.x - 1, p0.y - 1), ImVec2(p1.x + 1, p1.y + 1))) continue;
    hits.push_back({si, best, pt, std::fabs(pt.y - mouse.y)});
  }
  hovered_x_ = x_.inv(mt);
  if (hits.empty()) return;

  // The tooltip lists the series nearest the mouse, top of the plot first, so it stays short
  // with dozens of layers.
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.dist < b.dist; });
  const size_t shown = std::min<size_t>(hits.size(), 12);
  for (size_t k = 0; k < hits.size(); ++k) {
    const Entry& e = series_[hits[k].series];
    dl->AddCircleFilled(hits[k].pt, k == 0 ? 4.5f : 3.0f, e.color, 12);
    if (k == 0) dl->AddCircle(hits[k].pt, 6.0f, IM_COL32(255, 255, 255, 220), 16, 1.5f);
  }
  std::vector<Hit> rows(hits.begin(), hits.begin() + shown);
  std::sort(rows.begin(), rows.end(), [](const Hit& a, const Hit& b) { return a.pt.y < b.pt.y; });

  ImGui::BeginTooltip();
  ImGui::Text("%s = %s", x_.label.empty() ? "x" : x_.label.c_str(), format_value(x_.inv(mt)).c_str());
  if (ImGui::BeginTable("##hover", 3, ImGuiTableFlags_SizingFixedFit | ImGuiTableFlags_BordersInnerH)) {
    const float sw = ImGui::GetTextLineHeight();
    for (const Hit& h : rows) {
      const Entry& e = series_[h.series];
      const bool nearest = h.series == hits[0].series;
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      ImVec2 c = ImGui::GetCursorScreenPos();
      ImGui::GetWindowDrawList()->AddRectFilled(ImVec2(c.x, c.y + sw * 0.2f), ImVec2(c.x + sw * 0.6f, c.y + sw * 0.8f),
                                                e.color);
      ImGui::Dummy(ImVec2(sw * 0.6f, sw));
      ImGui::TableNextColumn();
      if (nearest)
        ImGui::TextUnformatted(e.s.name.c_str());
      else
        ImGui::TextDisabled("%s", e.s.name.c_str());
      ImGui::TableNextColumn();
      ImGui::Text("%s", format_value(e.s.y[h.index]).c_str());
      if (nearest) {
        ImGui::SameLine();
        ImGui::TextDisabled("at %s", format_value(e.s.x[h.index]).c_str());
      }
    }
    ImGui::EndTable();
  }
  if (hits.size() > shown) ImGui::TextDisabled("+%zu more series", hits.size() - shown);
  ImGui::EndTooltip();
}

void Plot::context_menu() {
  if (!ImGui::BeginPopup("##plot_ctx")) return;
  if (ImGui::MenuItem("Fit view", "double-click")) fit();
  bool lx = x_.scale == AxisScale::Log10, ly = y_.scale == AxisScale::Log10;
  if (ImGui::MenuItem("Log x", nullptr, lx)) set_x_scale(lx ? AxisScale::Linear : AxisScale::Log10);
  if (ImGui::MenuItem("Log y", nullptr, ly)) set_y_scale(ly ? AxisScale::Linear : AxisScale::Log10);
  if (ImGui::MenuItem("Raster lines", nullptr, raster_)) set_raster(!raster_);
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("Cached CPU-drawn line layer: fast on software GL.\nOff: ImDrawList polylines every frame.");
  ImGui::Separator();
  if (ImGui::MenuItem("Show all series")) {
    for (Entry& e : series_) e.s.visible = true;
    data_changed();
  }
  if (ImGui::MenuItem("Hide all series")) {
    for (Entry& e : series_) e.s.visible = false;
    data_changed();
  }
  ImGui::Separator();
  ImGui::TextDisabled("Export (path without extension)");
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 18);
  ImGui::InputText("##export_base", &export_base_);
  if (ImGui::Button("Save CSV")) {
    std::string err, path = export_base_ + ".csv";
    if (save_csv(path, &err)) {
      export_msg_ = path + ": CSV written";
      log_info("%s", export_msg_.c_str());
    } else {
      export_msg_ = err;
      log_error("%s", err.c_str());
    }
    ImGui::CloseCurrentPopup();
  }
  ImGui::SameLine();
  if (ImGui::Button("Save PNG")) {
    request_png(export_base_ + ".png");  // the popup is gone by the frame that is captured
    ImGui::CloseCurrentPopup();
  }
  ImGui::EndPopup();
}

// Where everything goes this frame: margins for title, tick labels and axis labels, and a
// legend with as many columns as the plot height needs (capped at 40% of the width).
Plot::Frame Plot::layout(ImVec2 origin, ImVec2 size) const {
  Frame f;
  f.o = origin;
  f.end = ImVec2(origin.x + size.x, origin.y + size.y);
  f.lh = ImGui::GetTextLineHeight();
  f.pad = std::round(f.lh * 0.45f);
  const float top = (title_.empty() ? 0.0f : f.lh + f.pad) + f.pad + f.lh * 0.5f;
  const float bottom = f.pad + f.lh + (x_.label.empty() ? 0.0f : f.lh + f.pad) + f.pad;
  const float ph = size.y - top - bottom;
  f.yt = ticks(y_, ph, f.lh * 2.8f);
  float ylab_w = 0;
  for (const Tick& t : f.yt)
    if (!t.label.empty()) ylab_w = std::max(ylab_w, ImGui::CalcTextSize(t.label.c_str()).x);
  const float left = f.pad + (y_.label.empty() ? 0.0f : f.lh + f.pad) + ylab_w + kTickLen + 4.0f;

  f.row_h = f.lh + 3.0f;
  f.swatch = f.lh * 1.4f;
  float name_w = 0;
  for (int i = 0; i < int(series_.size()); ++i) {
    if (!series_[i].s.legend) continue;
    f.items.push_back(i);
    name_w = std::max(name_w, ImGui::CalcTextSize(series_[i].s.name.c_str()).x);
  }
  const int n_items = int(f.items.size());
  f.rows_fit = std::max(1, int(ph / f.row_h));
  f.cols = n_items == 0 ? 0 : (n_items + f.rows_fit - 1) / f.rows_fit;
  if (f.cols > 0) f.rows_fit = (n_items + f.cols - 1) / f.cols;  // balance the columns
  f.col_w = f.swatch + 6.0f + name_w + f.pad * 1.5f;
  if (f.cols * f.col_w > size.x * 0.4f && f.cols > 0) f.col_w = size.x * 0.4f / f.cols;  // names get clipped
  const float right = f.pad + (f.cols ? f.cols * f.col_w + f.pad : 0.0f);

  f.p0 = ImVec2(std::floor(f.o.x + left), std::floor(f.o.y + top));
  f.p1 = ImVec2(std::floor(f.end.x - right), std::floor(f.end.y - bottom));
  f.pw = f.p1.x - f.p0.x;
  f.ph = f.p1.y - f.p0.y;
  f.legend0 = ImVec2(f.p1.x + f.pad, f.p0.y);
  return f;
}

// Wheel zoom about the mouse (over an axis: that axis only), drag pan, double-click fit,
// right-click menu, legend clicks. One invisible button covers the widget; regions are hit-tested
// by hand so a drag that starts in the plot keeps panning when it leaves it.
void Plot::handle_input(const Frame& f, ImVec2 size, bool* over_plot, bool* dragging) {
  ImGui::SetCursorScreenPos(f.o);
  ImGui::InvisibleButton("##plot_input", size, ImGuiButtonFlags_MouseButtonLeft | ImGuiButtonFlags_MouseButtonRight);
  const bool hovered = ImGui::IsItemHovered();
  const ImGuiIO& io = ImGui::GetIO();
  const ImVec2 m = io.MousePos;
  *over_plot = hovered && in_rect(m, f.p0, f.p1);
  *dragging = false;
  const bool over_x_axis = hovered && in_rect(m, ImVec2(f.p0.x, f.p1.y), ImVec2(f.p1.x, f.end.y));
  const bool over_y_axis = hovered && in_rect(m, ImVec2(f.o.x, f.p0.y), ImVec2(f.p0.x, f.p1.y));
  if (ImGui::IsItemActivated()) drag_from_plot_ = in_rect(io.MouseClickedPos[0], f.p0, f.p1);

  if (f.pw > 10 && f.ph > 10) {
    const double xr = x_.hi - x_.lo, yr = y_.hi - y_.lo;
    if (io.MouseWheel != 0 && (*over_plot || over_x_axis || over_y_axis)) {
      const double k = std::pow(1.2, -io.MouseWheel);  // wheel up zooms in
      if (!over_y_axis) {
        const double c = x_.lo + (m.x - f.p0.x) / f.pw * xr;
        x_.lo = c + (x_.lo - c) * k, x_.hi = c + (x_.hi - c) * k;
      }
      if (!over_x_axis) {
        const double c = y_.lo + (f.p1.y - m.y) / f.ph * yr;
        y_.lo = c + (y_.lo - c) * k, y_.hi = c + (y_.hi - c) * k;
      }
      auto_fit_ = false;
    }
    if (ImGui::IsItemActive() && drag_from_plot_ && ImGui::IsMouseDragging(ImGuiMouseButton_Left, 2.0f)) {
      *dragging = true;
      x_.lo -= io.MouseDelta.x / f.pw * xr, x_.hi -= io.MouseDelta.x / f.pw * xr;
      y_.lo += io.MouseDelta.y / f.ph * yr, y_.hi += io.MouseDelta.y / f.ph * yr;
      auto_fit_ = false;
    }
    if (*over_plot && ImGui::IsMouseDoubleClicked(ImGuiMouseButton_Left)) fit();
    // Keep the view finite and non-degenerate whatever the user does.
    for (Axis* a : {&x_, &y_}) {
      const double lim = a->scale == AxisScale::Log10 ? 300.0 : 1e30;
      a->lo = std::clamp(a->lo, -lim, lim);
      a->hi = std::clamp(a->hi, -lim, lim);
      const double min_span = 1e-9 * std::max(1.0, std::fabs(a->lo));
      if (!(a->hi - a->lo > min_span)) a->hi = a->lo + min_span;
    }
  }
  if (hovered && ImGui::IsMouseReleased(ImGuiMouseButton_Right)) ImGui::OpenPopup("##plot_ctx");

  // Legend: hover highlights the series, click toggles it.
  legend_hover_ = -1;
  for (int k = 0; k < int(f.items.size()) && f.cols > 0; ++k) {
    const int i = f.items[k];
    const ImVec2 a = legend_pos(f, k);
    if (!hovered || !in_rect(m, a, ImVec2(a.x + f.col_w, a.y + f.row_h))) continue;
    legend_hover_ = i;
    if (ImGui::IsMouseClicked(ImGuiMouseButton_Left)) {
      series_[i].s.visible = !series_[i].s.visible;
      data_changed();
    }
  }
  if (legend_hover_ >= 0 && !series_[legend_hover_].s.visible) legend_hover_ = -1;
}

ImVec2 Plot::legend_pos(const Frame& f, int i) const {
  return ImVec2(f.legend0.x + (i / f.rows_fit) * f.col_w, f.legend0.y + (i % f.rows_fit) * f.row_h);
}

// Decimate (and rasterize) only when the view, size, data, highlight or pixel density changed;
// the common frame reuses the last result.
void Plot::update_cache(const Frame& f) {
  if (f.pw <= 10 || f.ph <= 10) return;
  const double key[4] = {x_.lo, x_.hi, y_.lo, y_.hi};
  const float fb_scale = ImGui::GetIO().DisplayFramebufferScale.x;
  const bool view_changed = cached_version_ != data_version_ || std::memcmp(key, cached_view_, sizeof key) != 0 ||
                            cached_w_ != f.pw || cached_h_ != f.ph;
  const bool layer_changed =
      raster_ && (view_changed || !cached_raster_ || cached_hover_ != legend_hover_ || cached_scale_ != fb_scale);
  if (!view_changed && !layer_changed) return;
  using ms = std::chrono::duration<double, std::milli>;
  const auto t0 = std::chrono::steady_clock::now();
  if (view_changed)  // series are independent: one task each
    parallel_for(int(series_.size()), [&](int i) {
      Entry& e = series_[i];
      if (!e.s.visible) return;
      if (!e.transformed) transform(e);
      decimate(e, f.pw, f.ph);
    });
  const auto t1 = std::chrono::steady_clock::now();
  if (raster_) rasterize(f.pw, f.ph);
  stats_.decimate_ms = ms(t1 - t0).count();
  stats_.raster_ms = ms(std::chrono::steady_clock::now() - t1).count();
  stats_.recomputed = true;
  cached_version_ = data_version_;
  std::memcpy(cached_view_, key, sizeof key);
  cached_w_ = f.pw, cached_h_ = f.ph, cached_scale_ = fb_scale;
  cached_hover_ = legend_hover_;
  cached_raster_ = raster_;
}

// Grid, tick marks and tick labels. Labels that would touch their neighbour are dropped.
void Plot::draw_axes(ImDrawList* dl, const Frame& f) const {
  const std::vector<Tick> xt = ticks(x_, f.pw, std::max(f.lh * 6.0f, 70.0f));
  float last_right = -1e9f;
  for (const Tick& t : xt) {
    const float x = std::round(x_px(f, t.t)) + 0.5f;
    if (x < f.p0.x - 0.5f || x > f.p1.x + 0.5f) continue;
    dl->AddLine(ImVec2(x, f.p0.y), ImVec2(x, f.p1.y), t.major ? kGridMajor : kGridMinor);
    dl->AddLine(ImVec2(x, f.p1.y), ImVec2(x, f.p1.y + (t.major ? kTickLen : kTickLen * 0.6f)), kBorder);
    if (t.label.empty()) continue;
    const ImVec2 ts = ImGui::CalcTextSize(t.label.c_str());
    const float lx = std::clamp(x - ts.x * 0.5f, f.o.x, f.end.x - ts.x);
    if (lx < last_right + f.lh * 0.6f) continue;
    dl->AddText(ImVec2(lx, f.p1.y + kTickLen + 2.0f), kText, t.label.c_str());
    last_right = lx + ts.x;
  }
  float last_top = 1e9f;
  for (const Tick& t : f.yt) {  // ascending: bottom-up on screen
    const float y = std::round(y_px(f, t.t)) + 0.5f;
    if (y < f.p0.y - 0.5f || y > f.p1.y + 0.5f) continue;
    dl->AddLine(ImVec2(f.p0.x, y), ImVec2(f.p1.x, y), t.major ? kGridMajor : kGridMinor);
    dl->AddLine(ImVec2(f.p0.x - (t.major ? kTickLen : kTickLen * 0.6f), y), ImVec2(f.p0.x, y), kBorder);
    if (t.label.empty()) continue;
    const ImVec2 ts = ImGui::CalcTextSize(t.label.c_str());
    const float ly = std::clamp(y - ts.y * 0.5f, f.o.y, f.end.y - ts.y);
    if (ly + ts.y > last_top - 1.0f) continue;
    dl->AddText(ImVec2(f.p0.x - kTickLen - 4.0f - ts.x, ly), kText, t.label.c_str());
    last_top = ly;
  }
  if (!title_.empty()) {
    const ImVec2 ts = ImGui::CalcTextSize(title_.c_str());
    dl->PushClipRect(f.o, f.end, true);
    dl->AddText(ImVec2(std::max(f.o.x + f.pad, f.p0.x + (f.pw - ts.x) * 0.5f), f.o.y + f.pad), kText, title_.c_str());
    dl->PopClipRect();
  }
  if (!x_.label.empty()) {
    const ImVec2 ts = ImGui::CalcTextSize(x_.label.c_str());
    dl->AddText(ImVec2(std::max(f.o.x, f.p0.x + (f.pw - ts.x) * 0.5f), f.p1.y + kTickLen + 2.0f + f.lh + f.pad * 0.5f),
                kText, x_.label.c_str());
  }
  if (!y_.label.empty())
    add_text_vertical(dl, ImVec2(f.o.x + f.pad + f.lh * 0.5f, f.p0.y + f.ph * 0.5f), kText, y_.label.c_str());
}

void Plot::draw_legend(ImDrawList* dl, const Frame& f) const {
  if (f.cols == 0) return;
  dl->PushClipRect(f.legend0, f.end, true);
  for (int k = 0; k < int(f.items.size()); ++k) {
    const int i = f.items[k];
    const Entry& e = series_[i];
    const ImVec2 a = legend_pos(f, k);
    if (i == legend_hover_) dl->AddRectFilled(a, ImVec2(a.x + f.col_w - 2, a.y + f.row_h), IM_COL32(255, 255, 255, 28));
    const float cy = std::round(a.y + f.row_h * 0.5f);
    const ImU32 col = e.s.visible ? e.color : with_alpha(e.color, 0.3f);
    const ImVec2 seg[2] = {ImVec2(a.x + 2, cy), ImVec2(a.x + f.swatch, cy)};
    if (e.s.dashed)
      add_dashed_polyline(dl, seg, 2, col, 2.0f);
    else
      dl->AddLine(seg[0], seg[1], col, 2.0f);
    // Clipped to its column: long names must not run into the next one.
    dl->PushClipRect(a, ImVec2(a.x + f.col_w - 4.0f, a.y + f.row_h), true);
    dl->AddText(ImVec2(a.x + f.swatch + 6.0f, a.y + 1.5f), e.s.visible ? kText : kTextDim, e.s.name.c_str());
    dl->PopClipRect();
  }
  dl->PopClipRect();
}

void Plot::draw_cursor(ImDrawList* dl, const Frame& f) const {
  if (!cursor_x_) return;
  const double t = x_.fwd(*cursor_x_);
  if (!std::isfinite(t) || t < x_.lo || t > x_.hi) return;
  const float x = std::round(x_px(f, t)) + 0.5f;
  dl->AddLine(ImVec2(x, f.p0.y), ImVec2(x, f.p1.y), kCursorLine, 2.0f);
  const std::string s = format_value(*cursor_x_);
  const ImVec2 ts = ImGui::CalcTextSize(s.c_str());
  const float lx = x + 4.0f + ts.x > f.p1.x ? x - 4.0f - ts.x : x + 4.0f;  // flip left near the edge
  dl->AddRectFilled(ImVec2(lx - 2, f.p0.y + 2), ImVec2(lx + ts.x + 2, f.p0.y + 2 + ts.y), IM_COL32(0, 0, 0, 170));
  dl->AddText(ImVec2(lx, f.p0.y + 2), kCursorLine, s.c_str());
}

void Plot::draw(ImVec2 size) {
  hovered_x_.reset();
  stats_ = PlotStats{};
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  if (size.x <= 0) size.x = avail.x;
  if (size.y <= 0) size.y = avail.y;
  size.x = std::max(size.x, 120.0f);
  size.y = std::max(size.y, 90.0f);
  if (resort_check_) {
    for (Entry& e : series_) e.sorted = std::is_sorted(e.s.x.begin(), e.s.x.end());
    resort_check_ = false;
  }
  if (auto_fit_ && fitted_version_ != data_version_) {  // bounds only change with the data
    fit_now();
    fitted_version_ = data_version_;
  }

  // A child window of its own: the wheel zooms instead of scrolling the parent, and the plot gets
  // its own draw list, which PNG export renders offscreen.
  ImGui::PushStyleVar(ImGuiStyleVar_WindowPadding, ImVec2(0, 0));
  ImGui::BeginChild(id_.c_str(), size, false, ImGuiWindowFlags_NoScrollbar | ImGuiWindowFlags_NoScrollWithMouse);
  ImGui::PopStyleVar();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const Frame f = layout(ImGui::GetCursorScreenPos(), size);
  area_min_ = f.p0, area_max_ = f.p1;
  const bool capturing = !pending_png_.empty();
  bool over_plot = false, dragging = false;
  handle_input(f, size, &over_plot, &dragging);
  update_cache(f);

  // Raster mode: the opaque line layer replaces the background and the faint grid goes on top.
  const bool layer = raster_ && texture_ && texture_->valid() && f.pw > 10 && f.ph > 10;
  if (layer)
    add_opaque_image(dl, texture_->id(), f.p0, f.p1);
  else
    dl->AddRectFilled(f.p0, f.p1, kPlotBg);
  draw_axes(dl, f);

  dl->PushClipRect(f.p0, f.p1, true);
  draw_bands(dl, f);
  for (int i = 0; i < int(series_.size()); ++i) {
    const Entry& e = series_[i];
    if (!e.s.visible) continue;
    stats_.points_total += std::min(e.s.x.size(), e.s.y.size());
    stats_.points_drawn += e.pts.size();
    if (!layer && i != legend_hover_) draw_series(dl, e, f.p0, false, legend_hover_ >= 0);
  }
  if (!layer && legend_hover_ >= 0) draw_series(dl, series_[legend_hover_], f.p0, true, false);  // on top
  if (overlay) overlay(dl);
  draw_cursor(dl, f);
  if (over_plot && !dragging && !capturing && !ImGui::IsPopupOpen("##plot_ctx"))
    draw_hover(dl, f.p0, f.p1, ImGui::GetIO().MousePos.x);
  dl->PopClipRect();
  dl->AddRect(ImVec2(f.p0.x - 0.5f, f.p0.y - 0.5f), ImVec2(f.p1.x + 0.5f, f.p1.y + 0.5f), kBorder);
  draw_legend(dl, f);

  context_menu();
  ImGui::EndChild();

  if (capturing) {
    const std::string path = pending_png_;
    pending_png_.clear();
    queue_capture(
        f.o, f.end, path,
        [this](bool ok, const std::string& msg) {
          export_msg_ = msg;
          if (ok)
            log_info("%s", msg.c_str());
          else
            log_error("%s", msg.c_str());
        },
        dl, ImGui::GetColorU32(ImGuiCol_WindowBg, 1.0f) | IM_COL32_A_MASK);
  }
}

// ---- export ----

namespace {
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}
}  // namespace

bool Plot::save_csv(const std::string& path, std::string* error) const {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    if (error) *error = path + ": cannot open for writing";
    return false;
  }
  bool shared_x = !series_.empty();
  for (const Entry& e : series_)
    shared_x = shared_x && e.s.x.size() == series_[0].s.x.size() && e.s.y.size() == e.s.x.size() &&
               std::equal(e.s.x.begin(), e.s.x.end(), series_[0].s.x.begin());
  if (shared_x) {
    std::fprintf(f, "%s", csv_field(x_.label.empty() ? "x" : x_.label).c_str());
    for (const Entry& e : series_) std::fprintf(f, ",%s", csv_field(e.s.name).c_str());
    std::fputc('\n', f);
    for (size_t i = 0; i < series_[0].s.x.size(); ++i) {
      std::fprintf(f, "%.9g", series_[0].s.x[i]);
      for (const Entry& e : series_) std::fprintf(f, ",%.9g", e.s.y[i]);
      std::fputc('\n', f);
    }
  } else {
    std::fprintf(f, "series,x,y\n");
    for (const Entry& e : series_) {
      const std::string name = csv_field(e.s.name);
      const size_t n = std::min(e.s.x.size(), e.s.y.size());
      for (size_t i = 0; i < n; ++i) std::fprintf(f, "%s,%.9g,%.9g\n", name.c_str(), e.s.x[i], e.s.y[i]);
    }
  }
  bool ok = std::ferror(f) == 0;
  ok = std::fclose(f) == 0 && ok;
  if (!ok && error) *error = path + ": write failed";
  return ok;
}

void Plot::request_png(const std::string& path) { pending_png_ = path; }

}  // namespace pvm::studio
