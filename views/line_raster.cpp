#include "views/line_raster.h"

#include <algorithm>
#include <cmath>

#include "views/parallel.h"

namespace pvm::studio {

void LineRaster::reset(int w, int h, ImU32 background) {
  w = std::max(w, 1), h = std::max(h, 1);
  if (w != w_ || h != h_) {
    w_ = w, h_ = h;
    px_.assign(size_t(w) * h, background);
    cov_.assign(size_t(w) * h, 0);
  } else {
    std::fill(px_.begin(), px_.end(), background);
  }
}

void LineRaster::draw(const std::vector<RasterLine>& lines, int max_threads) {
  if (lines.empty() || w_ <= 0) return;
  // Twice as many bands as threads: the counter hands out bands, so a band crowded with lines
  // does not leave the other thread idle. Bands of at least 32 rows keep per-band overhead small.
  const int threads = parallel_width(max_threads);
  const int n = std::clamp(threads > 1 ? 2 * threads : 1, 1, std::max(1, h_ / 32));
  bands_.resize(size_t(n));
  for (int i = 0; i < n; ++i) {
    bands_[i].y0 = h_ * i / n;
    bands_[i].y1 = h_ * (i + 1) / n;
    bands_[i].touched.clear();
  }
  parallel_for(n, [&](int i) { draw_band(bands_[i], lines); }, threads);
}

void LineRaster::draw_band(Band& b, const std::vector<RasterLine>& lines) {
  for (const RasterLine& l : lines) {
    cover_line(b, l);
    blend_covered(b, l.color);
  }
}

inline void LineRaster::cover(Band& b, int x, int y, float c) {
  if (c <= 0.0f || unsigned(x) >= unsigned(w_) || y < b.y0 || y >= b.y1) return;
  const uint32_t i = uint32_t(y) * uint32_t(w_) + uint32_t(x);
  const uint8_t v = c >= 1.0f ? 255 : uint8_t(c * 255.0f + 0.5f);
  uint8_t& d = cov_[i];
  if (d == 0 && v != 0) b.touched.push_back(i);
  if (v > d) d = v;
}

// Walk the major axis one pixel at a time; at each step the line covers an interval of the minor
// axis of length width/cos(angle) centred on the line, and each pixel gets its overlap with it.
// Loops are clipped to the canvas and the band, so the inner writes need no bounds checks.
void LineRaster::cover_segment(Band& b, ImVec2 a, ImVec2 c, float width) {
  // Cheap reject of segments entirely above or below the band (most of them, with several bands).
  const float reach = width + 1.0f;
  if (std::max(a.y, c.y) + reach < b.y0 || std::min(a.y, c.y) - reach >= b.y1) return;
  const float dx = c.x - a.x, dy = c.y - a.y;
  const float len = std::sqrt(dx * dx + dy * dy);
  if (len < 1e-4f) {
    cover(b, int(std::floor(a.x)), int(std::floor(a.y)), width);
    return;
  }
  const bool x_major = std::fabs(dx) >= std::fabs(dy);
  // Work in (major, minor) coordinates; swap back when writing.
  float a0 = x_major ? a.x : a.y, a1 = x_major ? c.x : c.y;
  float m0 = x_major ? a.y : a.x, m1 = x_major ? c.y : c.x;
  if (a0 > a1) std::swap(a0, a1), std::swap(m0, m1);
  const float slope = a1 > a0 ? (m1 - m0) / (a1 - a0) : 0.0f;
  const float half = 0.5f * width * len / std::fabs(x_major ? dx : dy);
  // Rows are the minor axis of x-major lines and the major axis of y-major ones.
  const int major_lo = x_major ? 0 : b.y0, major_hi = x_major ? w_ - 1 : b.y1 - 1;
  const int minor_lo = x_major ? b.y0 : 0, minor_hi = x_major ? b.y1 - 1 : w_ - 1;
  const int s0 = std::max(major_lo, int(std::floor(a0))), s1 = std::min(major_hi, int(std::floor(a1)));
  // Pixel (s, p) lives at cov_[s * s_step + p * p_step].
  const size_t s_step = x_major ? 1 : size_t(w_), p_step = x_major ? size_t(w_) : 1;
  uint8_t* cov = cov_.data();
  for (int s = s0; s <= s1; ++s) {
    const float cs = std::clamp(s + 0.5f, a0, a1);
    const float m = m0 + (cs - a0) * slope;
    const float lo = m - half, hi = m + half;
    const int p0 = std::max(minor_lo, int(std::floor(lo))), p1 = std::min(minor_hi, int(std::floor(hi)));
    for (int p = p0; p <= p1; ++p) {
      const float cv = std::min(p + 1.0f, hi) - std::max(float(p), lo);
      if (cv <= 0.0f) continue;
      const size_t i = size_t(s) * s_step + size_t(p) * p_step;
      const uint8_t v = cv >= 1.0f ? 255 : uint8_t(cv * 255.0f + 0.5f);
      if (cov[i] == 0 && v != 0) b.touched.push_back(uint32_t(i));
      if (v > cov[i]) cov[i] = v;
    }
  }
}

void LineRaster::cover_line(Band& b, const RasterLine& l) {
  if (l.n <= 0) return;
  if (l.n == 1) {  // a lone point: a small square dot
    for (int dy = -1; dy <= 0; ++dy)
      for (int dx = -1; dx <= 0; ++dx) cover(b, int(l.pts[0].x) + dx, int(l.pts[0].y) + dy, 1.0f);
  } else if (!l.dashed) {
    for (int i = 0; i + 1 < l.n; ++i) cover_segment(b, l.pts[i], l.pts[i + 1], l.width);
  } else {
    // Dash phase runs along the whole polyline so the pattern is even across joints.
    const float on = 7.0f, period = 12.0f;
    float phase = 0.0f;
    for (int i = 0; i + 1 < l.n; ++i) {
      const ImVec2 a = l.pts[i], c = l.pts[i + 1];
      const float dx = c.x - a.x, dy = c.y - a.y, len = std::sqrt(dx * dx + dy * dy);
      float done = 0.0f;
      while (done < len) {
        const float step = std::min(phase < on ? on - phase : period - phase, len - done);
        if (phase < on)
          cover_segment(b, ImVec2(a.x + dx * done / len, a.y + dy * done / len),
                        ImVec2(a.x + dx * (done + step) / len, a.y + dy * (done + step) / len), l.width);
        done += step;
        phase += step;
        if (phase >= period) phase -= period;
      }
    }
  }
}

void LineRaster::blend_covered(Band& b, ImU32 color) {
  const uint32_t sr = color & 0xFF, sg = (color >> 8) & 0xFF, sb = (color >> 16) & 0xFF, sa = color >> 24;
  for (uint32_t i : b.touched) {
    const uint32_t a = (cov_[i] * sa + 127) / 255;  // 0..255
    cov_[i] = 0;
    const uint32_t d = px_[i];
    const uint32_t dr = d & 0xFF, dg = (d >> 8) & 0xFF, db = (d >> 16) & 0xFF;
    const uint32_t r = (sr * a + dr * (255 - a) + 127) / 255;
    const uint32_t g = (sg * a + dg * (255 - a) + 127) / 255;
    const uint32_t bl = (sb * a + db * (255 - a) + 127) / 255;
    px_[i] = r | (g << 8) | (bl << 16) | 0xFF000000u;  // the layer stays opaque
  }
  b.touched.clear();
}

}  // namespace pvm::studio
