#include "app/studio/layout.h"

#include <algorithm>
#include <cmath>

namespace pvm::studio {

void LayoutFractions::clamp() {
  left = std::clamp(left, 0.1f, 0.6f);
  left_split = std::clamp(left_split, 0.15f, 0.85f);
  center_split = std::clamp(center_split, 0.15f, 0.85f);
}

LayoutRects compute_layout(ImVec2 wp, ImVec2 ws, const LayoutFractions& fr, float fs) {
  LayoutFractions f = fr;
  f.clamp();
  float lw = std::round(std::clamp(ws.x * f.left, fs * 18.0f, fs * 40.0f));
  lw = std::min(lw, std::round(ws.x * 0.45f));
  const float min_h = std::min(fs * 6.0f, ws.y * 0.3f);
  const float lt = std::round(std::clamp(ws.y * f.left_split, min_h, ws.y - min_h));
  const float ct = std::round(std::clamp(ws.y * f.center_split, min_h, ws.y - min_h));
  LayoutRects r;
  r.slot[int(Slot::LeftTop)] = {wp, ImVec2(lw, lt)};
  r.slot[int(Slot::LeftBottom)] = {ImVec2(wp.x, wp.y + lt), ImVec2(lw, ws.y - lt)};
  r.slot[int(Slot::CenterTop)] = {ImVec2(wp.x + lw, wp.y), ImVec2(ws.x - lw, ct)};
  r.slot[int(Slot::CenterBottom)] = {ImVec2(wp.x + lw, wp.y + ct), ImVec2(ws.x - lw, ws.y - ct)};
  return r;
}

bool layout_splitters(const LayoutRects& r, ImVec2 wp, ImVec2 ws, LayoutFractions* f) {
  ImGuiIO& io = ImGui::GetIO();
  static int dragging = -1;  // 0 vertical (left|centre), 1 left column, 2 centre column
  const float grab = 4.0f;
  const ImVec2 m = io.MousePos;
  const SlotRect& lt = r[Slot::LeftTop];
  const SlotRect& ct = r[Slot::CenterTop];
  const float vx = lt.pos.x + lt.size.x, ly = lt.pos.y + lt.size.y, cy = ct.pos.y + ct.size.y;
  int over = -1;
  // Only when no popup or other window is in the way.
  if (!ImGui::IsPopupOpen(nullptr, ImGuiPopupFlags_AnyPopupId | ImGuiPopupFlags_AnyPopupLevel) && !ImGui::IsAnyItemActive()) {
    if (std::fabs(m.x - vx) <= grab && m.y >= wp.y && m.y <= wp.y + ws.y) over = 0;
    else if (std::fabs(m.y - ly) <= grab && m.x >= wp.x && m.x < vx) over = 1;
    else if (std::fabs(m.y - cy) <= grab && m.x > vx && m.x <= wp.x + ws.x) over = 2;
  }
  if (dragging < 0 && over >= 0 && ImGui::IsMouseClicked(0)) dragging = over;
  if (dragging >= 0 && !ImGui::IsMouseDown(0)) dragging = -1;
  const int show = dragging >= 0 ? dragging : over;
  if (show >= 0) ImGui::SetMouseCursor(show == 0 ? ImGuiMouseCursor_ResizeEW : ImGuiMouseCursor_ResizeNS);
  if (dragging < 0) return false;
  if (dragging == 0) f->left = (m.x - wp.x) / ws.x;
  if (dragging == 1) f->left_split = (m.y - wp.y) / ws.y;
  if (dragging == 2) f->center_split = (m.y - wp.y) / ws.y;
  f->clamp();
  ImGui::GetForegroundDrawList()->AddLine(dragging == 0 ? ImVec2(m.x, wp.y) : ImVec2(dragging == 1 ? wp.x : vx, m.y),
                                          dragging == 0 ? ImVec2(m.x, wp.y + ws.y)
                                                        : ImVec2(dragging == 1 ? vx : wp.x + ws.x, m.y),
                                          IM_COL32(255, 200, 80, 200), 2.0f);
  return true;
}

}  // namespace pvm::studio
