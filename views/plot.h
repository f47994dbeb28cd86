// Plot widget drawn with ImDrawList: line series on linear or log10 axes, legend, hover read-out,
// wheel zoom, drag pan, min/max decimation per pixel column, CSV and PNG export.
// Axes, text, legend, hover and cursor are ImDrawList primitives. The series lines, after
// decimation, are by default rasterized on the CPU into a texture that is redrawn only when the
// view changes (software GL pays per line quad); set_raster(false) draws them as ImDrawList
// polylines instead. No GL or torch in this header (views/gl_texture.h, views/capture.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/base/plot_series.h"
#include "imgui.h"
#include "views/line_raster.h"

namespace pvm::studio {

using pvm::PlotSeries;  // the one series type, shared with the PNG writer

enum class AxisScale { Linear, Log10 };

// PlotSeries: engine/base/plot_series.h (the PNG writer draws the same type). Here color 0 is the
// next colour of the palette and thickness 0 is one pixel.

// What the last draw() did, for the status line and --bench-frames.
struct PlotStats {
  size_t points_total = 0;      // over visible series
  size_t points_drawn = 0;      // after decimation
  bool recomputed = false;      // decimation (and rasterization) ran this frame
  double decimate_ms = 0.0;     // time of that run
  double raster_ms = 0.0;       // CPU rasterization + texture upload of that run
};

// One axis tick. t is in axis units: the value itself, or log10 of it on a Log10 axis.
struct PlotTick {
  double t;
  bool major;         // minor ticks get a fainter grid line and no label
  std::string label;  // empty: no label
};
// Ticks for the axis range [t_lo, t_hi] (axis units) drawn over `pixels`, about `spacing` pixels
// apart: 1/2/5 x 10^k steps on linear axes; decades (thinned when crowded) with 2..9 minors on
// log axes, falling back to linear steps when less than two decades are visible.
std::vector<PlotTick> compute_ticks(AxisScale scale, double t_lo, double t_hi, float pixels, float spacing);

class CpuTexture;

class Plot {
 public:
  explicit Plot(std::string id);
  ~Plot();
  Plot(const Plot&) = delete;
  Plot& operator=(const Plot&) = delete;

  // ---- content ----
  void set_title(std::string title) { title_ = std::move(title); }
  void set_axis_labels(std::string x, std::string y);
  void set_x_scale(AxisScale s);
  void set_y_scale(AxisScale s);
  AxisScale x_scale() const { return x_.scale; }
  AxisScale y_scale() const { return y_.scale; }
  int add_series(PlotSeries s);  // returns its index
  void clear_series();  // and the bands
  // Fills between two series of the same x (a confidence band: its lo and hi series, which may be
  // drawn too), translucent, one quad per pixel column. The fill is part of the PNG export; the
  // data is in the CSV through the two series.
  void add_band(int lo_series, int hi_series, ImU32 fill);
  size_t band_count() const { return bands_.size(); }
  size_t series_count() const { return series_.size(); }
  const PlotSeries& series(size_t i) const { return series_[i].s; }
  PlotSeries& edit_series(size_t i);  // the caller may change anything; the cache is dropped

  // ---- view (data coordinates) ----
  // What double-click does: the bounds of the visible series, and keep following them as data
  // changes, until the user zooms or pans (or set_view is called).
  void fit();
  void set_view(double x0, double x1, double y0, double y1);
  void view(double* x0, double* x1, double* y0, double* y1) const;

  // ---- cursor ----
  // A vertical line driven from outside (e.g. the token under the mouse in a token view).
  void set_cursor_x(std::optional<double> x) { cursor_x_ = x; }
  std::optional<double> cursor_x() const { return cursor_x_; }
  // Data x under the mouse during the last draw(), to drive other views.
  std::optional<double> hovered_x() const { return hovered_x_; }

  // ---- drawing ----
  // size <= 0 in a dimension fills the available region. Call inside an ImGui window.
  void draw(ImVec2 size = ImVec2(0, 0));
  const PlotStats& stats() const { return stats_; }
  // Plot area (inside the axes) in screen coordinates at the last draw(), for overlays.
  ImVec2 area_min() const { return area_min_; }
  ImVec2 area_max() const { return area_max_; }
  // Screen position of the data point (x, y) in the view of the last draw(), through the axis
  // scales (NaN on a log axis for values <= 0), for overlays such as event markers.
  ImVec2 to_screen(double x, double y) const;
  // Drawn over the series (clipped to the plot area, below the cursor and hover read-out), into the
  // plot's own draw list so it is part of the PNG export; to_screen() maps data points.
  std::function<void(ImDrawList*)> overlay;
  // Decimated points of series i at the last draw(), relative to area_min() (for tests/tools).
  const std::vector<ImVec2>& decimated(size_t i) const { return series_[i].pts; }
  // Lines are rasterized on the CPU into a cached texture (default; fast on software GL), or
  // emitted as ImDrawList polylines every frame (vector: no GL texture needed).
  void set_raster(bool on);
  bool raster() const { return raster_; }

  // ---- export ----
  // Wide CSV (x,<series>...) when all series share x, else long CSV (series,x,y). Hidden series
  // are included: the file is the data, not the picture.
  bool save_csv(const std::string& path, std::string* error = nullptr) const;
  // The next frame that draws the plot also renders its draw list offscreen and writes it (windows
  // lying over the plot stay out; the hover read-out is left out of that frame). The result goes
  // to the log and export_message().
  void request_png(const std::string& path);
  const std::string& export_message() const { return export_msg_; }

 private:
  struct Axis {
    AxisScale scale = AxisScale::Linear;
    std::string label;
    double lo = 0, hi = 1;  // view, in transformed units (log10 for Log10)
    double fwd(double v) const;
    double inv(double t) const;
  };
  struct Entry {
    PlotSeries s;
    ImU32 color = 0;
    bool sorted = true;  // x ascending
    // x, y through the axis transforms (log10 costs too much to redo per point per frame).
    std::vector<float> tx, ty;
    bool transformed = false;
    bool gaps = false;  // some tx/ty not finite (NaN, or <= 0 on a log axis)
    // Decimated screen points relative to the plot area's top-left, split into runs.
    std::vector<ImVec2> pts;
    std::vector<uint32_t> run_starts;
  };
  using Tick = PlotTick;

  // Geometry of one draw(): widget rect, plot area p0..p1, legend grid, y ticks (they set the
  // left margin).
  struct Frame {
    ImVec2 o, end, p0, p1, legend0;
    float pw = 0, ph = 0, lh = 0, pad = 0;
    float row_h = 0, swatch = 0, col_w = 0;
    int rows_fit = 1, cols = 0;
    std::vector<int> items;  // series listed in the legend, in order
    std::vector<Tick> yt;
  };
  Frame layout(ImVec2 origin, ImVec2 size) const;
  void fit_now();
  void handle_input(const Frame& f, ImVec2 size, bool* over_plot, bool* dragging);
  void update_cache(const Frame& f);
  void draw_axes(ImDrawList* dl, const Frame& f) const;
  void draw_legend(ImDrawList* dl, const Frame& f) const;
  void draw_cursor(ImDrawList* dl, const Frame& f) const;
  void draw_bands(ImDrawList* dl, const Frame& f);
  ImVec2 legend_pos(const Frame& f, int i) const;
  float x_px(const Frame& f, double t) const { return float(f.p0.x + (t - x_.lo) / (x_.hi - x_.lo) * f.pw); }
  float y_px(const Frame& f, double t) const { return float(f.p1.y - (t - y_.lo) / (y_.hi - y_.lo) * f.ph); }

  void data_changed();
  void transform(Entry& e) const;
  bool data_bounds(bool is_x, double* lo, double* hi);
  void decimate(Entry& e, float w, float h) const;
  void rasterize(float pw, float ph);
  std::vector<Tick> ticks(const Axis& a, float pixels, float spacing) const {
    return compute_ticks(a.scale, a.lo, a.hi, pixels, spacing);
  }
  void draw_series(ImDrawList* dl, const Entry& e, ImVec2 origin, bool highlight, bool dim) const;
  void draw_hover(ImDrawList* dl, ImVec2 p0, ImVec2 p1, float mouse_x);
  void context_menu();

  std::string id_, title_;
  Axis x_, y_;
  std::vector<Entry> series_;
  struct Band {
    int lo, hi;
    ImU32 fill;
  };
  std::vector<Band> bands_;
  bool auto_fit_ = true;       // fit on draw until the user zooms or pans
  bool resort_check_ = false;  // edit_series() may have changed x order
  bool drag_from_plot_ = false;
  std::optional<double> cursor_x_, hovered_x_;
  int legend_hover_ = -1;

  // decimation cache key
  uint64_t data_version_ = 1, cached_version_ = 0, fitted_version_ = 0;
  double cached_view_[4] = {0, 0, 0, 0};
  float cached_w_ = 0, cached_h_ = 0, cached_scale_ = 0;
  int cached_hover_ = -2;
  bool cached_raster_ = false;

  bool raster_ = true;
  LineRaster canvas_;
  std::vector<ImVec2> raster_pts_;
  std::unique_ptr<CpuTexture> texture_;

  PlotStats stats_;
  ImVec2 area_min_, area_max_;
  std::string pending_png_, export_msg_, export_base_;
};

// Colour i of the default palette (qualitative, readable on the dark theme).
ImU32 plot_palette(int i);
// Colour for t in [0,1] on a blue -> red ramp, for ordered series such as layers.
ImU32 plot_ramp(float t);

}  // namespace pvm::studio
