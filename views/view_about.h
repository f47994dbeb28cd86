// Help > About: versions of everything the studio runs on (asked for in bug reports).
#pragma once
#include <string>

#include "views/view.h"

namespace pvm::studio {

class AboutView : public View {
 public:
  AboutView();
  void draw() override;
  bool owns_window() const override { return true; }
  // Filled by the app once the GL context exists.
  std::string gl_renderer, gl_version, glfw_version;
};

}  // namespace pvm::studio
