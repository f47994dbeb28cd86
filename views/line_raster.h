// CPU rasterizer for the plot's line layer. Software GL (llvmpipe) pays per triangle and per
// textured pixel, so tens of thousands of ImDrawList line quads cost far more than drawing the
// same lines here and showing them as one textured quad that is only redrawn when the view changes.
#pragma once
#include <cstdint>
#include <vector>

#include "imgui.h"

namespace pvm::studio {

struct RasterLine {
  const ImVec2* pts;  // pixel coordinates
  int n;
  ImU32 color;
  float width;  // pixels
  bool dashed;
};

class LineRaster {
 public:
  // Size in pixels; fills with the opaque background colour.
  void reset(int w, int h, ImU32 background);
  // Draws the lines in order, later ones on top: anti-aliased (box-filter coverage), coverage
  // max-combined over each whole line before blending so joints are not blended twice. Rows are
  // cut into bands rasterized in parallel; a band only touches its own rows, so the picture does
  // not depend on the thread count.
  void draw(const std::vector<RasterLine>& lines, int max_threads = 0);
  void polyline(const ImVec2* pts, int n, ImU32 color, float width, bool dashed) {
    draw({RasterLine{pts, n, color, width, dashed}}, 1);
  }
  // RGBA8, ImU32 layout (R in the low byte), row-major, top row first.
  const uint32_t* pixels() const { return px_.data(); }
  int width() const { return w_; }
  int height() const { return h_; }

 private:
  struct Band {
    int y0, y1;                      // rows [y0, y1)
    std::vector<uint32_t> touched;   // pixels with cov_ != 0, so blending skips the rest
  };
  void draw_band(Band& b, const std::vector<RasterLine>& lines);
  void cover_line(Band& b, const RasterLine& l);
  void cover_segment(Band& b, ImVec2 a, ImVec2 c, float width);
  void cover(Band& b, int x, int y, float c);
  void blend_covered(Band& b, ImU32 color);

  int w_ = 0, h_ = 0;
  std::vector<uint32_t> px_;
  std::vector<uint8_t> cov_;  // per-pixel coverage of the line being drawn
  std::vector<Band> bands_;
};

}  // namespace pvm::studio
