#include "views/gl_texture.h"

#include <GL/gl.h>

#include <cstdint>

namespace pvm::studio {

CpuTexture::~CpuTexture() {
  if (tex_) glDeleteTextures(1, &tex_);
}

void CpuTexture::upload(int w, int h, const uint32_t* pixels) {
  GLint prev = 0;
  glGetIntegerv(GL_TEXTURE_BINDING_2D, &prev);  // ImGui's backend expects its own binding back
  if (!tex_) {
    glGenTextures(1, &tex_);
    glBindTexture(GL_TEXTURE_2D, tex_);
    // Drawn at one texel per pixel; NEAREST keeps 1-px lines crisp.
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
  } else {
    glBindTexture(GL_TEXTURE_2D, tex_);
  }
  glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
  glPixelStorei(GL_UNPACK_ROW_LENGTH, 0);
  if (w != w_ || h != h_) {
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, w, h, 0, GL_RGBA, GL_UNSIGNED_BYTE, pixels);
    w_ = w, h_ = h;
  } else {
    glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, pixels);
  }
  glBindTexture(GL_TEXTURE_2D, GLuint(prev));
}

void add_opaque_image(ImDrawList* dl, ImTextureID tex, ImVec2 min, ImVec2 max) {
  dl->AddCallback([](const ImDrawList*, const ImDrawCmd*) { glDisable(GL_BLEND); }, nullptr);
  dl->AddImage(tex, min, max);
  dl->AddCallback(ImDrawCallback_ResetRenderState, nullptr);  // the backend turns blending back on
}

ImTextureID CpuTexture::id() const { return reinterpret_cast<ImTextureID>(static_cast<intptr_t>(tex_)); }

}  // namespace pvm::studio
