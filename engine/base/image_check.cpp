#include "engine/base/image_check.h"

#include <algorithm>
#include <cstdio>

#include "engine/base/error.h"

namespace pvm {

void check_image_size(int64_t width, int64_t height, const std::string& where) {
  const std::string dims = " (" + std::to_string(width) + "x" + std::to_string(height) + ")";
  if (width <= 0 || height <= 0) throw file_error(where, "image has 0 pixels");
  if (width * height > kMaxImagePixels)
    throw file_error(where, "image has " + std::to_string(width * height) + " pixels, more than the limit of " +
                                std::to_string(kMaxImagePixels) + dims);
  const double ratio = double(std::max(width, height)) / double(std::min(width, height));
  if (ratio > kMaxAspectRatio) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", ratio);
    throw file_error(where, "absolute aspect ratio must be smaller than 200, got " + std::string(buf) + dims);
  }
}

}  // namespace pvm
