// Image writing with stb_image_write (PNG for plots/screenshots, JPEG/BMP for tests and exports).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/image.h"

namespace pvm {

// Encodes 8-bit pixels (comp = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; rows top to bottom) as PNG.
std::vector<uint8_t> encode_png(int width, int height, int comp, const uint8_t* pixels);

// Writes `pixels` to `path`, format chosen by extension: .png, .jpg/.jpeg (quality 1..100), .bmp.
// Atomic (temp file + rename). Errors are pvm::Error naming the path.
void write_image(const std::string& path, int width, int height, int comp, const uint8_t* pixels,
                 int jpeg_quality = 95);
void write_image(const std::string& path, const ImageRGB& img, int jpeg_quality = 95);
inline void write_png(const std::string& path, const ImageRGB& img) { write_image(path, img); }

}  // namespace pvm
