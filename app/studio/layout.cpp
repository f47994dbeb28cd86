#include "app/studio/layout.h"

#include <algorithm>
#include <cmath>

#include "imgui_internal.h"

namespace pvm::studio {

LayoutRects compute_layout(ImVec2 wp, ImVec2 ws, bool use_side, bool use_bottom) {
  LayoutRects r;
  const float fs = ImGui::GetFontSize();
  float bottom_h = use_bottom ? std::round(std::clamp(ws.y * 0.24f, fs * 8.0f, fs * 24.0f)) : 0.0f;
  float side_w = use_side ? std::round(std::clamp(ws.x * 0.26f, fs * 18.0f, fs * 36.0f)) : 0.0f;
  // Never let the helpers eat the main area on small windows.
  bottom_h = std::min(bottom_h, std::round(ws.y * 0.45f));
  side_w = std::min(side_w, std::round(ws.x * 0.45f));
  const float top_h = ws.y - bottom_h;
  r.main = {wp, ImVec2(ws.x - side_w, top_h)};
  r.side = {ImVec2(wp.x + ws.x - side_w, wp.y), ImVec2(side_w, top_h)};
  r.bottom = {ImVec2(wp.x, wp.y + top_h), ImVec2(ws.x, bottom_h)};
  return r;
}

void WindowPlacer::begin_frame(const std::vector<View*>& views) {
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  bool side = false, bottom = false;
  std::string key;  // which placed views are open: the layout depends on it
  for (const View* v : views) {
    // Windows the user placed float on their own; their slot goes to the others.
    if (!v->is_open() || v->slot() == Slot::Floating || user_placed(v->name())) continue;
    side |= v->slot() == Slot::Side;
    bottom |= v->slot() == Slot::Bottom;
    key += v->name() + '\n';
  }
  const bool changed = vp->WorkPos.x != last_pos_.x || vp->WorkPos.y != last_pos_.y ||
                       vp->WorkSize.x != last_size_.x || vp->WorkSize.y != last_size_.y || key != last_key_;
  if (!changed) return;
  last_pos_ = vp->WorkPos, last_size_ = vp->WorkSize, last_key_ = key;
  rects_ = compute_layout(vp->WorkPos, vp->WorkSize, side, bottom);
  for (auto& [name, s] : st_) s.due = true;
}

void WindowPlacer::before_draw(const View& v) {
  if (!v.is_open() || v.slot() == Slot::Floating) return;
  State& s = st_[v.name()];
  if (s.user || !s.due) return;
  s.target = v.slot() == Slot::Main ? rects_.main : v.slot() == Slot::Side ? rects_.side : rects_.bottom;
  ImGui::SetNextWindowPos(s.target.pos, ImGuiCond_Always);
  ImGui::SetNextWindowSize(s.target.size, ImGuiCond_Always);
  s.due = false;
  s.check = true;
}

void WindowPlacer::end_frame(const std::vector<View*>& views) {
  for (const View* v : views) {
    auto it = st_.find(v->name());
    if (it == st_.end() || it->second.user || !it->second.check || !v->is_open()) continue;
    ImGuiWindow* w = ImGui::FindWindowByName(v->name().c_str());
    if (!w || !w->WasActive) continue;
    const SlotRect& t = it->second.target;
    // SizeFull: a collapsed window keeps its full size, collapsing is not a move.
    const bool moved = std::fabs(w->Pos.x - t.pos.x) > 1 || std::fabs(w->Pos.y - t.pos.y) > 1 ||
                       std::fabs(w->SizeFull.x - t.size.x) > 1 || std::fabs(w->SizeFull.y - t.size.y) > 1;
    if (moved) {
      it->second.user = true;
      ImGui::MarkIniSettingsDirty();
    }
  }
}

void WindowPlacer::reset() {
  for (auto& [name, s] : st_) s.user = false, s.due = true;
  ImGui::MarkIniSettingsDirty();
}

bool WindowPlacer::tiled(const View& v) const {
  if (v.slot() == Slot::Floating) return false;
  auto it = st_.find(v.name());
  return it != st_.end() && !it->second.user && !it->second.due;
}

bool WindowPlacer::user_placed(const std::string& name) const {
  auto it = st_.find(name);
  return it != st_.end() && it->second.user;
}

void WindowPlacer::set_user_placed(const std::string& name, bool v) {
  State& s = st_[name];
  s.user = v;
  s.due = !v;
}

}  // namespace pvm::studio
