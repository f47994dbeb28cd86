// An RGBA8 GL texture filled from CPU memory, usable with ImDrawList::AddImage. Keeps GL
// headers out of the views. Create, upload and destroy with the GL context current.
#pragma once
#include <cstdint>

#include "imgui.h"

namespace pvm::studio {

class CpuTexture {
 public:
  CpuTexture() = default;
  ~CpuTexture();
  CpuTexture(const CpuTexture&) = delete;
  CpuTexture& operator=(const CpuTexture&) = delete;

  // pixels: w*h RGBA8, top row first. (Re)allocates when the size changes.
  void upload(int w, int h, const uint32_t* pixels);
  ImTextureID id() const;
  bool valid() const { return tex_ != 0; }

 private:
  unsigned int tex_ = 0;
  int w_ = 0, h_ = 0;
};

// AddImage for an opaque texture with blending switched off around it: software GL then skips
// reading and mixing the destination for every pixel of the quad.
void add_opaque_image(ImDrawList* dl, ImTextureID tex, ImVec2 min, ImVec2 max);

}  // namespace pvm::studio
