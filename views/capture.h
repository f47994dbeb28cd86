// Framebuffer read-backs. Pixels only exist after the frame has been rendered, so widgets queue a
// request while drawing and the main loop runs the queue between rendering and buffer swap.
#pragma once
#include <functional>
#include <string>

#include "imgui.h"

namespace pvm::studio {

// done(ok, message) runs on the UI thread once the file is written (or failed).
using CaptureDone = std::function<void(bool ok, const std::string& message)>;

// Rectangle in ImGui screen coordinates (it is scaled by DisplayFramebufferScale). With a draw
// list (a child window's own list), only that list is rendered, offscreen, so windows or popups
// lying over the widget stay out of the picture; without one the window's pixels are read back.
void queue_capture(ImVec2 min, ImVec2 max, const std::string& path, CaptureDone done = {},
                   const ImDrawList* list = nullptr, ImU32 background = IM_COL32(26, 27, 29, 255));

// Call with the GL context current, after ImGui_ImplOpenGL3_RenderDrawData, before swapping.
void run_captures();

// Reads a region of the current back buffer (GL window coordinates, origin bottom-left) and writes
// it as an RGB PNG, top row first. Returns false with *error set on failure.
bool save_framebuffer_png(int x, int y, int w, int h, const std::string& path, std::string* error);

}  // namespace pvm::studio
