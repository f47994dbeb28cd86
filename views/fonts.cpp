#include "views/fonts.h"

#include <filesystem>

namespace pvm::studio {
namespace {

const char* find_font(std::initializer_list<const char*> candidates) {
  for (const char* p : candidates)
    if (std::filesystem::exists(p)) return p;
  return nullptr;
}

}  // namespace

StudioFonts& fonts() {
  static StudioFonts f;
  return f;
}

void load_fonts(float size) {
  ImGuiIO& io = ImGui::GetIO();
  StudioFonts& f = fonts();
  ImFontConfig cfg;
  cfg.OversampleH = 2;  // a little crisper under software GL without the freetype rasterizer
  const char* sans = find_font({"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                                "/usr/share/fonts/TTF/DejaVuSans.ttf",
                                "/usr/share/fonts/dejavu/DejaVuSans.ttf"});
  const char* mono = find_font({"/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
                                "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
                                "/usr/share/fonts/dejavu/DejaVuSansMono.ttf"});
  f.ui = sans ? io.Fonts->AddFontFromFileTTF(sans, size, &cfg) : nullptr;
  if (!f.ui) {
    f.ui = io.Fonts->AddFontDefault();
    size = 13.0f;
  }
  f.mono = mono ? io.Fonts->AddFontFromFileTTF(mono, size - 1.0f, &cfg) : nullptr;
  if (!f.mono) f.mono = f.ui;
  f.size = size;
  io.FontDefault = f.ui;
}

}  // namespace pvm::studio
