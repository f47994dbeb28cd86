// Base of every studio view: a name (tab label, ImGui id and ini key), the layout slot it lives in,
// an open flag, and one draw() that fills the current window. The app owns the windows: views in
// the same slot share one tiled window as tabs; a Floating view gets a window of its own.
#pragma once
#include <string>

#include "imgui.h"

namespace pvm::studio {

// Region of the default layout (app/studio/layout.h). Left: image and the forms; Center: the answers
// on top, plots below.
enum class Slot { LeftTop, LeftBottom, CenterTop, CenterBottom, Floating };
inline constexpr int kTiledSlots = 4;

class View {
 public:
  View(std::string name, Slot slot, bool open) : name_(std::move(name)), slot_(slot), home_(slot), open_(open) {}
  virtual ~View() = default;
  View(const View&) = delete;
  View& operator=(const View&) = delete;

  // Contents only: called between the app's Begin/End (or BeginTabItem/EndTabItem).
  virtual void draw() = 0;
  // Extra flags for a floating view's own window.
  virtual ImGuiWindowFlags window_flags() const { return 0; }
  // A floating view that calls Begin/End itself (dialogs that place themselves).
  virtual bool owns_window() const { return false; }

  const std::string& name() const { return name_; }
  Slot slot() const { return slot_; }
  Slot home_slot() const { return home_; }
  void set_slot(Slot s) { slot_ = s; }  // Floating pops the view out, home_slot() docks it back
  bool is_open() const { return open_; }
  void set_open(bool v) { open_ = v; }
  bool* open_ptr() { return &open_; }
  // Asks the host to bring this view's tab to the front on the next frame.
  void focus() { focus_request_ = true; }
  bool take_focus_request() {
    bool f = focus_request_;
    focus_request_ = false;
    return f;
  }

 private:
  std::string name_;
  Slot slot_, home_;
  bool open_;
  bool focus_request_ = false;
};

}  // namespace pvm::studio
