#include "views/capture.h"

#define GL_GLEXT_PROTOTYPES 1  // framebuffer objects (GL 3.0); Linux libGL exports them
#include <GL/gl.h>
#include <GL/glext.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "engine/base/fs_util.h"
#include "imgui_impl_opengl3.h"

namespace pvm::studio {
namespace {

struct Request {
  ImVec2 min, max;
  std::string path;
  CaptureDone done;
  const ImDrawList* list;
  ImU32 background;
};
// UI thread only: widgets queue while drawing, the main loop drains after rendering.
std::vector<Request>& queue() {
  static std::vector<Request> q;
  return q;
}

// GL rows run bottom-up, PNG rows top-down.
bool write_png_flipped(std::vector<unsigned char>& px, int w, int h, const std::string& path, std::string* error) {
  const size_t stride = size_t(w) * 3;
  std::vector<unsigned char> row(stride);
  for (int r = 0; r < h / 2; ++r) {
    unsigned char* a = px.data() + r * stride;
    unsigned char* b = px.data() + (h - 1 - r) * stride;
    std::copy(a, a + stride, row.data());
    std::copy(b, b + stride, a);
    std::copy(row.data(), row.data() + stride, b);
  }
  std::error_code ec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  try {
    pvm::check_output_file(path, "PNG");  // says why: a folder, or a folder that cannot be made
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return false;
  }
  if (!stbi_write_png(path.c_str(), w, h, 3, px.data(), int(stride))) {
    if (error) *error = path + ": cannot write PNG (" + std::strerror(errno) + ")";
    return false;
  }
  return true;
}

}  // namespace

void queue_capture(ImVec2 min, ImVec2 max, const std::string& path, CaptureDone done, const ImDrawList* list,
                   ImU32 background) {
  queue().push_back({min, max, path, std::move(done), list, background});
}

namespace {

// Renders one draw list into a framebuffer object of the rectangle's size and saves it.
bool capture_list_offscreen(const Request& r, int w, int h, std::string* error) {
  GLint prev_fb = 0;
  glGetIntegerv(GL_FRAMEBUFFER_BINDING, &prev_fb);
  GLuint fb = 0, rb = 0;
  glGenFramebuffers(1, &fb);
  glGenRenderbuffers(1, &rb);
  glBindRenderbuffer(GL_RENDERBUFFER, rb);
  glRenderbufferStorage(GL_RENDERBUFFER, GL_RGBA8, w, h);
  glBindFramebuffer(GL_FRAMEBUFFER, fb);
  glFramebufferRenderbuffer(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_RENDERBUFFER, rb);
  bool ok = glCheckFramebufferStatus(GL_FRAMEBUFFER) == GL_FRAMEBUFFER_COMPLETE;
  if (ok) {
    const ImVec4 bg = ImGui::ColorConvertU32ToFloat4(r.background);
    glViewport(0, 0, w, h);
    glDisable(GL_SCISSOR_TEST);
    glClearColor(bg.x, bg.y, bg.z, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    // A one-list ImDrawData whose display rectangle is the widget: the backend maps it onto the
    // whole framebuffer object and shifts clip rectangles accordingly.
    ImDrawData dd;
    ImDrawList* lists[1] = {const_cast<ImDrawList*>(r.list)};
    dd.Valid = true;
    dd.CmdLists = lists;
    dd.CmdListsCount = 1;
    dd.TotalVtxCount = r.list->VtxBuffer.Size;
    dd.TotalIdxCount = r.list->IdxBuffer.Size;
    dd.DisplayPos = r.min;
    dd.DisplaySize = ImVec2(r.max.x - r.min.x, r.max.y - r.min.y);
    dd.FramebufferScale = ImGui::GetIO().DisplayFramebufferScale;
    ImGui_ImplOpenGL3_RenderDrawData(&dd);
    std::vector<unsigned char> px(size_t(w) * h * 3);
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glReadBuffer(GL_COLOR_ATTACHMENT0);
    for (int i = 0; i < 16 && glGetError() != GL_NO_ERROR; ++i) {
    }  // earlier errors are not this read-back's (bounded: a lost context may repeat one)
    glReadPixels(0, 0, w, h, GL_RGB, GL_UNSIGNED_BYTE, px.data());
    if (GLenum e = glGetError(); e != GL_NO_ERROR) {
      ok = false;
      if (error) *error = r.path + ": reading back the " + std::to_string(w) + "x" + std::to_string(h) +
                          " capture failed (GL error " + std::to_string(e) + ")";
    } else {
      ok = write_png_flipped(px, w, h, r.path, error);
    }
  } else if (error) {
    *error = r.path + ": cannot capture: framebuffer object of " + std::to_string(w) + "x" + std::to_string(h) +
             " is incomplete";
  }
  glBindFramebuffer(GL_FRAMEBUFFER, GLuint(prev_fb));
  glDeleteFramebuffers(1, &fb);
  glDeleteRenderbuffers(1, &rb);
  if (prev_fb == 0) glReadBuffer(GL_BACK);
  return ok;
}

}  // namespace

bool save_framebuffer_png(int x, int y, int w, int h, const std::string& path, std::string* error) {
  if (w <= 0 || h <= 0) {
    if (error) *error = path + ": cannot capture an empty region";
    return false;
  }
  std::vector<unsigned char> px(size_t(w) * h * 3);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadBuffer(GL_BACK);
  for (int i = 0; i < 16 && glGetError() != GL_NO_ERROR; ++i) {
  }  // earlier errors are not this read-back's (bounded: a lost context may repeat one)
  glReadPixels(x, y, w, h, GL_RGB, GL_UNSIGNED_BYTE, px.data());
  if (GLenum e = glGetError(); e != GL_NO_ERROR) {
    if (error) *error = path + ": reading back the " + std::to_string(w) + "x" + std::to_string(h) +
                        " framebuffer failed (glReadPixels, GL error " + std::to_string(e) + ")";
    return false;
  }
  return write_png_flipped(px, w, h, path, error);
}

void run_captures() {
  auto& q = queue();
  if (q.empty()) return;
  std::vector<Request> todo;
  todo.swap(q);
  const ImGuiIO& io = ImGui::GetIO();
  const float sx = io.DisplayFramebufferScale.x, sy = io.DisplayFramebufferScale.y;
  const int fb_w = int(io.DisplaySize.x * sx), fb_h = int(io.DisplaySize.y * sy);
  for (auto& r : todo) {
    // Clamp to the framebuffer, then flip to GL's bottom-left origin.
    int x0 = std::clamp(int(std::floor(r.min.x * sx)), 0, fb_w);
    int x1 = std::clamp(int(std::ceil(r.max.x * sx)), 0, fb_w);
    int y0 = std::clamp(int(std::floor(r.min.y * sy)), 0, fb_h);
    int y1 = std::clamp(int(std::ceil(r.max.y * sy)), 0, fb_h);
    std::string err;
    bool ok = false;
    if (r.list) {
      // Offscreen needs no clamping to the window: the widget may be partly scrolled out.
      const int w = int(std::lround((r.max.x - r.min.x) * sx)), h = int(std::lround((r.max.y - r.min.y) * sy));
      x0 = 0, x1 = w, y0 = 0, y1 = h;
      ok = w > 0 && h > 0 && capture_list_offscreen(r, w, h, &err);
      if (!ok && w > 0 && h > 0) err += " (offscreen capture)";
    } else {
      ok = save_framebuffer_png(x0, fb_h - y1, x1 - x0, y1 - y0, r.path, &err);
    }
    if (r.done)
      r.done(ok, ok ? r.path + ": " + std::to_string(x1 - x0) + "x" + std::to_string(y1 - y0) +
                          " PNG written"
                    : err);
  }
}

}  // namespace pvm::studio
