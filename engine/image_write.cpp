#include "engine/image_write.h"

#include <stb_image_write.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"

namespace pvm {

namespace {

void append_bytes(void* ctx, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(ctx);
  auto* p = static_cast<uint8_t*>(data);
  v->insert(v->end(), p, p + size);
}

void check_args(const std::string& where, int width, int height, int comp, const uint8_t* pixels) {
  if (width <= 0 || height <= 0) throw file_error(where, "cannot write an image with 0 pixels");
  if (comp < 1 || comp > 4) throw file_error(where, "channels must be 1..4 (got " + std::to_string(comp) + ")");
  if (!pixels) throw file_error(where, "no pixel data");
}

std::string lower_ext(const std::string& path) {
  auto slash = path.find_last_of('/');
  auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string e = path.substr(dot + 1);
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

}  // namespace

std::vector<uint8_t> encode_png(int width, int height, int comp, const uint8_t* pixels) {
  check_args("png", width, height, comp, pixels);
  std::vector<uint8_t> out;
  if (!stbi_write_png_to_func(append_bytes, &out, width, height, comp, pixels, width * comp))
    throw Error("png: encoding failed");
  return out;
}

void write_image(const std::string& path, int width, int height, int comp, const uint8_t* pixels, int quality) {
  check_args(path, width, height, comp, pixels);
  std::string ext = lower_ext(path);
  std::vector<uint8_t> bytes;
  int ok = 0;
  if (ext == "png") {
    ok = stbi_write_png_to_func(append_bytes, &bytes, width, height, comp, pixels, width * comp);
  } else if (ext == "jpg" || ext == "jpeg") {
    if (quality < 1 || quality > 100) throw file_error(path, "JPEG quality must be 1..100");
    ok = stbi_write_jpg_to_func(append_bytes, &bytes, width, height, comp, pixels, quality);
  } else if (ext == "bmp") {
    ok = stbi_write_bmp_to_func(append_bytes, &bytes, width, height, comp, pixels);
  } else {
    throw file_error(path, "unknown image extension '." + ext + "' (use .png, .jpg or .bmp)");
  }
  if (!ok) throw file_error(path, "image encoding failed");
  const std::string tmp = path + ".tmp";
  {
    check_output_file(path, "image");  // a folder, or a missing folder, named as such
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw file_error(path, std::string("cannot open for writing: ") + std::strerror(errno));
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    // close() flushes: a full disk often shows only here, so check after it, not before.
    f.close();
    if (f.fail()) {
      int err = errno;
      std::remove(tmp.c_str());
      throw file_error(path, std::string("write failed: ") + (err ? std::strerror(err) : "I/O error"));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw file_error(path, "cannot rename temporary file into place");
  }
}

void write_image(const std::string& path, const ImageRGB& img, int quality) {
  if (img.rgb.size() != size_t(img.width) * img.height * 3)
    throw file_error(path, "pixel buffer size does not match width*height*3");
  write_image(path, img.width, img.height, 3, img.rgb.data(), quality);
}

}  // namespace pvm
