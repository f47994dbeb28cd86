// The studio application: GLFW window + OpenGL3 + ImGui, menu bar, default layout, status line,
// the frame loop and its headless modes (--screenshot, --bench-frames).
#pragma once
#include "app/studio/options.h"

namespace pvm::studio {

// Exit code: 0 ok, 1 runtime failure (GL context, PNG write), 2 no display.
int run_studio(const StudioOptions& opt);

}  // namespace pvm::studio
