#include "engine/plot_png.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "engine/base/error.h"
#include "engine/image_write.h"

namespace pvm {

namespace {

// 3x5 glyphs, rows top to bottom, '1' = ink.
const char* glyph(char c) {
  if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
  static const char* digits[] = {"111101101101111", "010110010010111", "111001111100111", "111001111001111",
                                 "101101111001001", "111100111001111", "111100111101111", "111001001010010",
                                 "111101111101111", "111101111001111"};
  static const char* letters[] = {
      "010101111101101", "110101110101110", "011100100100011", "110101101101110", "111100110100111",
      "111100110100100", "011100101101011", "101101111101101", "111010010010111", "001001001101010",
      "101101110101101", "100100100100111", "101111111101101", "110101101101101", "010101101101010",
      "110101110100100", "010101101110011", "110101110101101", "011100010001110", "111010010010010",
      "101101101101111", "101101101101010", "101101111111101", "101101010101101", "101101010010010",
      "111001010100111"};
  if (c >= '0' && c <= '9') return digits[c - '0'];
  if (c >= 'A' && c <= 'Z') return letters[c - 'A'];
  switch (c) {
    case ' ': return "000000000000000";
    case '.': return "000000000000010";
    case '-': return "000000111000000";
    case '+': return "000010111010000";
    case '/': return "001001010100100";
    case '(': return "010100100100010";
    case ')': return "010001001001010";
    case ':': return "000010000010000";
    case '_': return "000000000000111";
    case ',': return "000000000010100";
    case '=': return "000111000111000";
    case '%': return "101001010100101";
    case '^': return "010101000000000";
    case '*': return "000101010101000";
    case '|': return "010010010010010";
    case '<': return "001010100010001";
    case '>': return "100010001010100";
    case '[': return "110100100100110";
    case ']': return "011001001001011";
    case '\'': return "010010000000000";
    default: return "111001011000010";  // '?'
  }
}

void put(ImageRGB& img, int x, int y, std::array<uint8_t, 3> c) {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  auto* p = &img.rgb[((size_t)y * img.width + x) * 3];
  p[0] = c[0], p[1] = c[1], p[2] = c[2];
}

void fill_rect(ImageRGB& img, int x0, int y0, int w, int h, std::array<uint8_t, 3> c) {
  for (int y = y0; y < y0 + h; ++y)
    for (int x = x0; x < x0 + w; ++x) put(img, x, y, c);
}

// Bresenham with a square pen; `dash` > 0 draws dash-on / dash-off runs counted along the line.
void line(ImageRGB& img, int x0, int y0, int x1, int y1, std::array<uint8_t, 3> c, int thick, int dash, int& phase) {
  int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1, err = dx + dy;
  const int r0 = -(thick - 1) / 2, r1 = thick / 2;
  while (true) {
    bool on = dash <= 0 || (phase / dash) % 2 == 0;
    if (on)
      for (int a = r0; a <= r1; ++a)
        for (int b = r0; b <= r1; ++b) put(img, x0 + a, y0 + b, c);
    ++phase;
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

std::string fmt_tick(double v, double step) {
  char buf[32];
  if (std::abs(v) < step * 1e-6) v = 0;
  double a = std::abs(v);
  if (a != 0 && (a >= 1e5 || a < 1e-3))
    std::snprintf(buf, sizeof buf, "%.1e", v);
  else {
    int dec = std::max(0, (int)std::ceil(-std::log10(step) - 1e-9));
    std::snprintf(buf, sizeof buf, "%.*f", std::min(dec, 6), v);
  }
  return buf;
}

}  // namespace

int text_width(const std::string& text, int scale) { return text.empty() ? 0 : (int)text.size() * 4 * scale - scale; }

int draw_text(ImageRGB& img, int x, int y, const std::string& text, std::array<uint8_t, 3> color, int scale) {
  int cx = x;
  for (char ch : text) {
    const char* g = glyph(ch);
    for (int r = 0; r < 5; ++r)
      for (int c = 0; c < 3; ++c)
        if (g[r * 3 + c] == '1') fill_rect(img, cx + c * scale, y + r * scale, scale, scale, color);
    cx += 4 * scale;
  }
  return cx - x;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  double raw = (hi - lo) / std::max(1, target - 1);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) t.push_back(v);
  return t;
}

ImageRGB render_line_plot(const PlotSpec& s) {
  if (s.width < 160 || s.height < 120 || s.width > 8192 || s.height > 8192)
    throw Error("plot: size " + std::to_string(s.width) + "x" + std::to_string(s.height) +
                " is outside 160x120 .. 8192x8192");
  ImageRGB img;
  img.width = s.width, img.height = s.height;
  img.rgb.assign((size_t)s.width * s.height * 3, 255);
  const std::array<uint8_t, 3> black{0, 0, 0}, grey{225, 225, 225}, dark{60, 60, 60};
  const int sc = 2;
  // Axes work in transformed units (log10 on a log axis); labels show data units.
  auto tx = [&](double x) { return s.logx ? (x > 0 ? std::log10(x) : std::nan("")) : x; };
  auto ty = [&](double y) { return s.logy ? (y > 0 ? std::log10(y) : std::nan("")) : y; };
  double x0 = tx(s.xmin), x1 = tx(s.xmax), y0 = ty(s.ymin), y1 = ty(s.ymax);
  if (!(x1 > x0) || !(y1 > y0)) {
    double ax = std::numeric_limits<double>::infinity(), bx = -ax, ay = ax, by = -ax;
    for (auto& se : s.series)
      for (size_t i = 0; i < std::min(se.x.size(), se.y.size()); ++i) {
        double u = tx(se.x[i]), v = ty(se.y[i]);
        if (std::isfinite(u) && std::isfinite(v))
          ax = std::min(ax, u), bx = std::max(bx, u), ay = std::min(ay, v), by = std::max(by, v);
      }
    if (!std::isfinite(ax)) ax = 0, bx = 1, ay = 0, by = 1;
    if (bx <= ax) bx = ax + 1;
    if (by <= ay) by = ay + (ay == 0 ? 1 : std::abs(ay) * 0.1);
    double pad = (by - ay) * 0.05;
    if (!(x1 > x0)) x0 = ax, x1 = bx;
    if (!(y1 > y0)) y0 = ay - pad, y1 = by + pad;
  }
  // Log axis ticks: decades, plus 2x and 5x when the axis spans few decades.
  auto log_ticks = [](double lo, double hi) {
    std::vector<double> t;
    const bool fine = hi - lo < 2.5;
    for (int e = (int)std::floor(lo) - 1; e <= (int)std::ceil(hi); ++e)
      for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
        double v = e + std::log10(m);
        if (v >= lo - 1e-9 && v <= hi + 1e-9) t.push_back(v);
      }
    if (t.size() < 3) {  // under a decade: round values in data units, placed on the log axis
      t.clear();
      for (double v : nice_ticks(std::pow(10.0, lo), std::pow(10.0, hi), 5))
        if (v > 0) t.push_back(std::log10(v));
    }
    return t;
  };
  auto yt = s.logy ? log_ticks(y0, y1) : nice_ticks(y0, y1, 6);
  auto xt = s.logx ? log_ticks(x0, x1) : nice_ticks(x0, x1, 7);
  double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1, xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  auto label = [](double v, double step, bool log) {
    if (!log) return fmt_tick(v, step);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", std::pow(10.0, v));
    return std::string(buf);
  };
  int ylab_w = 0;
  for (double v : yt) ylab_w = std::max(ylab_w, text_width(label(v, ystep, s.logy), sc));
  const int L = 16 + ylab_w + 8, R = s.width - 20, T = s.title.empty() ? 34 : 50, B = s.height - 50;
  if (R - L < 40 || B - T < 40) throw Error("plot: " + std::to_string(s.width) + "x" + std::to_string(s.height) + " is too small");
  auto px = [&](double x) { return (int)std::lround(L + (x - x0) / (x1 - x0) * (R - L)); };
  auto py = [&](double y) { return (int)std::lround(B - (y - y0) / (y1 - y0) * (B - T)); };
  int ph = 0;
  // grid, ticks, labels
  for (double v : yt) {
    int y = py(v);
    if (y < T || y > B) continue;
    line(img, L, y, R, y, grey, 1, 0, ph);
    line(img, L - 5, y, L, y, black, 1, 0, ph);
    auto t = label(v, ystep, s.logy);
    draw_text(img, L - 8 - text_width(t, sc), y - 5, t, dark, sc);
  }
  for (double v : xt) {
    int x = px(v);
    if (x < L || x > R) continue;
    line(img, x, T, x, B, grey, 1, 0, ph);
    line(img, x, B, x, B + 5, black, 1, 0, ph);
    auto t = label(v, xstep, s.logx);
    draw_text(img, x - text_width(t, sc) / 2, B + 9, t, dark, sc);
  }
  line(img, L, T, L, B, black, 1, 0, ph);
  line(img, L, B, R, B, black, 1, 0, ph);
  if (!s.title.empty()) {
    // the largest glyph scale that fits the width (a long title must not run off the image)
    int scale = 3;
    while (scale > 1 && text_width(s.title, scale) > s.width - 8) --scale;
    draw_text(img, std::max(4, (s.width - text_width(s.title, scale)) / 2), 12 + (3 - scale) * 3, s.title, black, scale);
  }
  if (!s.xlabel.empty()) draw_text(img, (L + R - text_width(s.xlabel, sc)) / 2, B + 28, s.xlabel, black, sc);
  if (!s.ylabel.empty()) draw_text(img, 8, T - 18, s.ylabel, black, sc);
  // series (clipped to the plot area by dropping points outside it vertically)
  auto color_of = [](const PlotSeries& se) {
    return se.color ? rgb_of(se.color) : std::array<uint8_t, 3>{31, 119, 180};
  };
  auto thick_of = [](const PlotSeries& se) { return se.thickness > 0 ? std::max(1, int(std::lround(se.thickness))) : 2; };
  auto listed = [](const PlotSeries& se) { return se.legend && !se.name.empty(); };
  for (auto& se : s.series) {
    int phase = 0;
    bool have = false;
    int lx = 0, ly = 0;
    for (size_t i = 0; i < std::min(se.x.size(), se.y.size()); ++i) {
      double u = tx(se.x[i]), v = ty(se.y[i]);
      if (!std::isfinite(u) || !std::isfinite(v)) {
        have = false;
        continue;
      }
      int x = std::clamp(px(u), L, R), y = std::clamp(py(v), T, B);
      if (have) line(img, lx, ly, x, y, color_of(se), thick_of(se), se.dotted ? 2 : se.dashed ? 6 : 0, phase);
      else line(img, x, y, x, y, color_of(se), thick_of(se), 0, phase);
      lx = x, ly = y, have = true;
    }
  }
  // legend (top right)
  int lw = 0, n = 0;
  for (auto& se : s.series)
    if (listed(se)) lw = std::max(lw, text_width(se.name, sc)), ++n;
  if (n > 0) {
    int bw = lw + 44, bh = n * 16 + 8, bx = R - bw - 6, by = T + 6;
    fill_rect(img, bx, by, bw, bh, {255, 255, 255});
    int p2 = 0;
    line(img, bx, by, bx + bw, by, dark, 1, 0, p2), line(img, bx, by + bh, bx + bw, by + bh, dark, 1, 0, p2);
    line(img, bx, by, bx, by + bh, dark, 1, 0, p2), line(img, bx + bw, by, bx + bw, by + bh, dark, 1, 0, p2);
    int k = 0;
    for (auto& se : s.series) {
      if (!listed(se)) continue;
      int y = by + 8 + k * 16 + 5, phase = 0;
      line(img, bx + 6, y, bx + 30, y, color_of(se), thick_of(se), se.dotted ? 2 : se.dashed ? 6 : 0, phase);
      draw_text(img, bx + 36, y - 5, se.name, black, sc);
      ++k;
    }
  }
  return img;
}

ImageRGB render_heatmap_overlay(const ImageRGB& image, const std::vector<float>& grid, int rows, int cols,
                                const std::string& title, double alpha, int min_side) {
  if (image.width <= 0 || image.height <= 0 || image.rgb.size() != (size_t)image.width * image.height * 3)
    throw Error("heatmap: empty or malformed image" + (image.source.empty() ? "" : " " + image.source));
  if (rows <= 0 || cols <= 0 || grid.size() != (size_t)rows * cols)
    throw Error("heatmap: " + std::to_string(grid.size()) + " values for a " + std::to_string(rows) + "x" +
                std::to_string(cols) + " grid");
  const int k = std::max(1, (min_side + std::min(image.width, image.height) - 1) / std::min(image.width, image.height));
  const int W = image.width * k, H = image.height * k, bar = 56;
  ImageRGB out;
  out.width = std::max(W, 240), out.height = H + bar;
  out.rgb.assign((size_t)out.width * out.height * 3, 255);
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (float v : grid)
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  const float span = hi > lo ? hi - lo : 1.f;
  // blue (low) -> white -> red (high); opacity grows with the value so low cells keep the image visible
  auto cmap = [](float u) -> std::array<float, 3> {
    if (u < 0.5f) return {2 * u, 2 * u, 1.f};
    return {1.f, 2 - 2 * u, 2 - 2 * u};
  };
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      int sy = y / k, sx = x / k;
      int gr = std::min(rows - 1, y * rows / H), gc = std::min(cols - 1, x * cols / W);
      float v = grid[(size_t)gr * cols + gc];
      float u = std::isfinite(v) ? (v - lo) / span : 0.f;
      auto c = cmap(u);
      float a = (float)alpha * (0.35f + 0.65f * u);
      auto* dst = &out.rgb[((size_t)y * out.width + x) * 3];
      for (int ch = 0; ch < 3; ++ch)
        dst[ch] = (uint8_t)std::lround((1 - a) * image.at(sy, sx, ch) + a * 255.f * c[ch]);
    }
  int ph = 0;
  const std::array<uint8_t, 3> gridc{90, 90, 90}, black{0, 0, 0};
  for (int r = 1; r < rows; ++r) line(out, 0, r * H / rows, W - 1, r * H / rows, gridc, 1, 0, ph);
  for (int c = 1; c < cols; ++c) line(out, c * W / cols, 0, c * W / cols, H - 1, gridc, 1, 0, ph);
  // colour bar with its range
  const int bx0 = 10, bx1 = out.width - 10, by = H + 8;
  for (int x = bx0; x < bx1; ++x) {
    auto c = cmap((float)(x - bx0) / std::max(1, bx1 - bx0 - 1));
    fill_rect(out, x, by, 1, 10, {(uint8_t)(255 * c[0]), (uint8_t)(255 * c[1]), (uint8_t)(255 * c[2])});
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3g", lo);
  draw_text(out, bx0, by + 14, buf, black, 2);
  std::snprintf(buf, sizeof buf, "%.3g", hi);
  draw_text(out, bx1 - text_width(buf, 2), by + 14, buf, black, 2);
  draw_text(out, bx0, by + 32, title, black, 2);
  return out;
}

void write_line_plot(const std::string& path, const PlotSpec& spec) { write_png(path, render_line_plot(spec)); }

}  // namespace pvm
