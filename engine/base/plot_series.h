// One line of a plot, for both renderers: the studio's interactive widget (views/plot.h) and the
// PNG writer of the CLI and exports (engine/plot_png.h). Torch-free and ImGui-free.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pvm {

// 0xAABBGGRR, the byte order of ImGui's IM_COL32, opaque.
constexpr uint32_t rgb(uint8_t r, uint8_t g, uint8_t b) {
  return 0xFF000000u | (uint32_t(b) << 16) | (uint32_t(g) << 8) | uint32_t(r);
}
constexpr std::array<uint8_t, 3> rgb_of(uint32_t c) {
  return {uint8_t(c & 255), uint8_t((c >> 8) & 255), uint8_t((c >> 16) & 255)};
}

struct PlotSeries {
  std::string name;         // legend label; "" = not listed
  // Same length; non-finite points break the line. float: a 16k-token answer times 72 curves
  // stays small in the studio, and a pixel needs no more.
  std::vector<float> x, y;
  uint32_t color = 0;       // rgb(); 0 = the renderer's default (the studio's palette, PNG blue)
  bool dashed = false;
  bool dotted = false;      // short dashes (PNG: fits drawn next to dashed ones)
  bool visible = true;      // studio: toggled from the legend
  bool legend = true;       // false: drawn but not listed (e.g. 36 layer curves explained elsewhere)
  float thickness = 0;      // pixels; 0 = the renderer's default (studio 1, PNG 2)
};

}  // namespace pvm
