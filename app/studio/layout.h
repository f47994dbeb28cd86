// Default window layout without ImGui's docking branch: rectangles for the Main/Side/Bottom slots
// are computed from the work area, and applied to a window whenever they change, until the user
// moves or resizes that window (then it is left alone; View > Reset layout takes it back).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "imgui.h"
#include "views/view.h"

namespace pvm::studio {

struct SlotRect {
  ImVec2 pos, size;
};

struct LayoutRects {
  SlotRect main, side, bottom;
};

// Side and bottom take a share of the work area clamped to sensible pixel sizes; a slot nobody
// uses gives its space to Main.
LayoutRects compute_layout(ImVec2 work_pos, ImVec2 work_size, bool use_side, bool use_bottom);

class WindowPlacer {
 public:
  // Once per frame, before any view draws.
  void begin_frame(const std::vector<View*>& views);
  // Right before the view's draw(): sets the next window's pos/size when due.
  void before_draw(const View& v);
  // After all views drew: windows whose rect differs from what we set were moved by the user.
  void end_frame(const std::vector<View*>& views);
  void reset();  // forget every user placement
  // True while the view's window sits in its slot: tiles never overlap, so their background can
  // be left to glClear (software GL pays for every background pixel it fills).
  bool tiled(const View& v) const;

  bool user_placed(const std::string& name) const;
  void set_user_placed(const std::string& name, bool v);

 private:
  struct State {
    bool user = false;
    bool due = true;     // apply the slot rect at the next before_draw
    bool check = false;  // compare at end_frame
    SlotRect target;
  };
  std::map<std::string, State> st_;
  LayoutRects rects_;
  ImVec2 last_pos_{-1, -1}, last_size_{-1, -1};
  std::string last_key_;
};

}  // namespace pvm::studio
