// Fonts shared by the views. load_fonts() runs once before the first frame; any font missing on
// the machine falls back to ImGui's built-in one, so views may use these unconditionally.
#pragma once
#include "imgui.h"

namespace pvm::studio {

struct StudioFonts {
  ImFont* ui = nullptr;
  ImFont* mono = nullptr;
  float size = 13.0f;
};

StudioFonts& fonts();
// size: pixel height of the UI font (the built-in font is fixed at 13 px).
void load_fonts(float size);

}  // namespace pvm::studio
