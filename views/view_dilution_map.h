// Dilution map view: visual attention mass per layer (rows) by generated position (columns) as a
// heatmap, for the baseline, the PVM side or their difference (PVM - baseline, diverging colours
// on a scale symmetric about 0), with the shared token cursor (hover a column to move it, click to
// pin); below it the layer x head map of the mean visual mass (which heads look at the image; needs
// per-head probes). Maps are rebuilt only when the data, the mode or the width change
// (views/dilution_map_data.h: columns reduced to the pixel width straight from the tokens, head
// means accumulated as tokens arrive) and drawn as one GL texture each. CSV and PNG export.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "views/dilution_map_data.h"
#include "views/gl_texture.h"
#include "views/studio_state.h"
#include "views/view.h"

namespace pvm::studio {

class DilutionMapView : public View {
 public:
  enum Mode { Baseline = 0, Pvm = 1, Difference = 2 };
  explicit DilutionMapView(StudioContext& ctx);
  void draw() override;

  Mode mode = Difference;
  bool nosink = false;

  // What the last draw showed (tests, headless checks): the map at its pixel width, the head map.
  const dmap::Matrix& shown_map() const { return map_; }
  const dmap::Matrix& shown_heads() const { return heads_; }
  void colour_range(float* lo, float* hi) const { *lo = lo_, *hi = hi_; }
  uint64_t builds() const { return builds_; }
  // Rebuilds the matrices for `width` pixel columns if anything changed; true when it rebuilt.
  bool rebuild(int width);

  // Writes <base>_map.csv (layers x positions at full resolution, of the current mode),
  // <base>_heads.csv (layers x heads, when recorded), and on the next drawn frame <base>.png (the
  // view's maps, axes and colour bars) with <base>.json (mode, colour ranges, where the maps lie in
  // the PNG). False with *error when a CSV cannot be written.
  bool export_files(const std::string& base, std::string* error);

 private:
  void draw_map(ImDrawList* dl, ImVec2 o, ImVec2 size);
  void draw_heads(ImDrawList* dl, ImVec2 o, ImVec2 size);
  void colour_bar(ImDrawList* dl, ImVec2 p0, ImVec2 p1, bool diverge, float lo, float hi);
  dmap::Matrix full_map() const;
  dmap::Matrix head_map() const;

  StudioContext& ctx_;
  dmap::Matrix map_, heads_;
  dmap::HeadMeans head_means_[2];
  int tokens_ = 0;  // source columns of map_ (before the reduction to pixels)
  float lo_ = 0, hi_ = 0, hlo_ = 0, hhi_ = 0;
  CpuTexture map_tex_, heads_tex_;
  bool map_dirty_ = true, heads_dirty_ = true;
  // Where the maps were drawn last (screen), for the PNG's metadata.
  ImVec2 map_p0_, map_p1_, heads_p0_, heads_p1_;
  bool heads_drawn_ = false;
  std::string pending_png_;
  // Cache key.
  uint64_t built_run_ = ~0ull;
  size_t built_n_[2] = {~size_t(0), ~size_t(0)};
  int built_mode_ = -1, built_width_ = -1;
  bool built_nosink_ = false;
  uint64_t builds_ = 0;
};

}  // namespace pvm::studio
