// Base of every studio view: a window with a name (also its ImGui id and ini key), an open flag
// and one draw() that does nothing when closed. The app places windows; views only draw them.
#pragma once
#include <string>

#include "imgui.h"

namespace pvm::studio {

// Region of the default layout a view's window is put into (app/studio/layout.h).
enum class Slot { Main, Side, Bottom, Floating };

class View {
 public:
  View(std::string name, Slot slot, bool open) : name_(std::move(name)), slot_(slot), open_(open) {}
  virtual ~View() = default;
  View(const View&) = delete;
  View& operator=(const View&) = delete;

  virtual void draw() = 0;

  const std::string& name() const { return name_; }
  Slot slot() const { return slot_; }
  bool is_open() const { return open_; }
  void set_open(bool v) { open_ = v; }
  bool* open_ptr() { return &open_; }

 private:
  std::string name_;
  Slot slot_;
  bool open_;
};

}  // namespace pvm::studio
