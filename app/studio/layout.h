// Default window layout without ImGui's docking branch: four tiled slots computed from the work
// area (left column: image over the forms; centre: answers over plots), recomputed on every resize.
// Views sharing a slot are tabs of one host window. The split fractions can be dragged (splitters
// between the slots) and are saved with the layout.
#pragma once
#include <string>

#include "imgui.h"
#include "views/view.h"

namespace pvm::studio {

struct SlotRect {
  ImVec2 pos, size;
};

struct LayoutFractions {
  float left = 0.30f;         // width of the left column
  float left_split = 0.47f;   // image share of the left column's height
  float center_split = 0.42f; // answers' share of the centre's height
  void clamp();
};

struct LayoutRects {
  SlotRect slot[kTiledSlots];  // indexed by Slot
  const SlotRect& operator[](Slot s) const { return slot[int(s)]; }
};

// Rectangles that tile the work area exactly. The left column is kept between 18 and 40 font sizes
// (and at most 45% of the width), slot heights at least 6 font sizes.
LayoutRects compute_layout(ImVec2 work_pos, ImVec2 work_size, const LayoutFractions& f, float font_size);

// Splitters on the borders between slots: drag to change the fractions. Call once per frame after
// the hosts are drawn; returns true while dragging (or when a fraction changed).
bool layout_splitters(const LayoutRects& r, ImVec2 work_pos, ImVec2 work_size, LayoutFractions* f);

}  // namespace pvm::studio
