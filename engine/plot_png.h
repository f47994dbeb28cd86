// Minimal line-plot renderer into an RGB buffer (axes, ticks, tick labels in a built-in 3x5
// bitmap font, title, legend), written as PNG through engine/image_write.h. No GUI needed: used
// by the CLI (pvm dilution) for its figures.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "engine/base/plot_series.h"
#include "engine/image.h"

namespace pvm {

// Series: engine/base/plot_series.h (the studio draws the same type). Here color 0 is blue
// (31, 119, 180), thickness 0 is 2 pixels, and series without a name (or legend = false) are not
// listed in the legend.

struct PlotSpec {
  std::string title, xlabel, ylabel;
  int width = 800, height = 500;
  std::vector<PlotSeries> series;
  // Optional fixed ranges; when min >= max the range comes from the data.
  double xmin = 0, xmax = 0, ymin = 0, ymax = 0;
  // Log10 axes (a power law is a straight line on log-log). Points <= 0 on a log axis are skipped;
  // fixed ranges are given in data units.
  bool logx = false, logy = false;
};

// Renders the plot. Throws pvm::Error when the size is outside 160x120 .. 8192x8192.
ImageRGB render_line_plot(const PlotSpec& spec);
// Renders and writes a PNG (atomic); errors name the path.
void write_line_plot(const std::string& path, const PlotSpec& spec);

// Draws `text` (ASCII; lower case is drawn as upper case, unknown characters as '?') with its
// top-left corner at (x, y), each font pixel a `scale` x `scale` block. Returns the width drawn.
int draw_text(ImageRGB& img, int x, int y, const std::string& text, std::array<uint8_t, 3> color, int scale = 2);
int text_width(const std::string& text, int scale = 2);

// The image scaled up by an integer factor (nearest) so it is at least `min_side` pixels on its
// shorter side, with `grid` ([rows * cols] values, row-major, e.g. attention on the merged patch
// grid) blended on top in a blue-to-red colour map (`alpha` = opacity at the grid's maximum),
// the grid lines drawn and a colour bar with the min/max values and `title` under the image.
// Throws pvm::Error when grid.size() != rows * cols or the image is empty.
ImageRGB render_heatmap_overlay(const ImageRGB& image, const std::vector<float>& grid, int rows, int cols,
                                const std::string& title, double alpha = 0.6, int min_side = 384);

// "Nice" tick values (1, 2, 5 x 10^k steps) covering [lo, hi], about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

}  // namespace pvm
