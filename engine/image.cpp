#include "engine/image.h"

#include <stb_image.h>
// jpeglib.h needs FILE and size_t declared first
#include <csetjmp>
#include <cstdio>
#include <jpeglib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/image_check.h"

namespace pvm {

// ---------------------------------------------------------------------------------------------
// preprocessor_config.json
// ---------------------------------------------------------------------------------------------

void PreprocessorConfig::validate(const std::string& where) const {
  auto bad = [&](const std::string& what) { return file_error(where, what); };
  if (patch_size <= 0) throw bad("patch_size must be positive (got " + std::to_string(patch_size) + ")");
  // Upper bounds (issue 21): no preprocessor config may ask for an absurd image or overflow the
  // factor / patch arithmetic. Qwen3-VL: patch 16, temporal 2, merge 2, pixels 65536..16777216.
  auto at_most = [&](int64_t v, const char* name, int64_t hi) {
    if (v > hi) throw bad(std::string(name) + " is " + std::to_string(v) + ", above the limit " + std::to_string(hi));
  };
  at_most(patch_size, "patch_size", 1024);
  at_most(temporal_patch_size, "temporal_patch_size", 64);
  at_most(merge_size, "merge_size", 16);
  at_most(min_pixels, "min_pixels (size.shortest_edge)", int64_t(1) << 27);
  at_most(max_pixels, "max_pixels (size.longest_edge)", int64_t(1) << 27);
  if (temporal_patch_size <= 0)
    throw bad("temporal_patch_size must be positive (got " + std::to_string(temporal_patch_size) + ")");
  if (merge_size <= 0) throw bad("merge_size must be positive (got " + std::to_string(merge_size) + ")");
  if (min_pixels <= 0) throw bad("min_pixels (size.shortest_edge) must be positive (got " + std::to_string(min_pixels) + ")");
  if (max_pixels < min_pixels)
    throw bad("max_pixels (size.longest_edge) " + std::to_string(max_pixels) + " is below min_pixels " +
              std::to_string(min_pixels));
  if (!(rescale_factor > 0) || !std::isfinite(rescale_factor))
    throw bad("rescale_factor must be a positive number (got " + std::to_string(rescale_factor) + ")");
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(mean[c])) throw bad("image_mean[" + std::to_string(c) + "] is not finite");
    if (!(std[c] != 0) || !std::isfinite(std[c]))
      throw bad("image_std[" + std::to_string(c) + "] must be a non-zero number");
  }
}

namespace {

using nlohmann::json;

int64_t json_int(const json& v, const std::string& key, const std::string& where) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  throw file_error(where, key + " must be an integer (got " + v.dump() + ")");
}

double json_num(const json& v, const std::string& key, const std::string& where) {
  if (v.is_number()) return v.get<double>();
  throw file_error(where, key + " must be a number (got " + v.dump() + ")");
}

std::array<float, 3> json_triple(const json& v, const std::string& key, const std::string& where) {
  if (v.is_number()) {
    float f = static_cast<float>(v.get<double>());
    return {f, f, f};
  }
  if (!v.is_array() || v.size() != 3)
    throw file_error(where, key + " must be a list of 3 numbers (got " + v.dump() + ")");
  std::array<float, 3> out{};
  for (size_t i = 0; i < 3; ++i) out[i] = static_cast<float>(json_num(v[i], key, where));
  return out;
}

}  // namespace

PreprocessorConfig PreprocessorConfig::parse(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    auto nl = msg.find('\n');
    if (nl != std::string::npos) msg = msg.substr(0, nl);
    throw file_error(where, "invalid JSON (" + msg + ")");
  }
  if (!j.is_object()) throw file_error(where, "expected a JSON object");
  PreprocessorConfig c;
  // null means "not set" only where HF's processor takes None (size, min_pixels, max_pixels); for
  // any other field it is an error naming it, not a silent default.
  auto has = [&](const char* k) {
    if (!j.contains(k)) return false;
    if (!j[k].is_null()) return true;
    static const char* const optional[] = {"size", "min_pixels", "max_pixels"};
    for (const char* o : optional)
      if (std::string(k) == o) return false;
    throw file_error(where, std::string(k) + " is null (give a value, or leave the key out for the default)");
  };
  if (has("size")) {
    const json& s = j["size"];
    if (!s.is_object()) throw file_error(where, "size must be an object (got " + s.dump() + ")");
    bool modern = s.contains("shortest_edge") || s.contains("longest_edge");
    bool legacy = s.contains("min_pixels") || s.contains("max_pixels");
    if (modern) {
      if (!s.contains("shortest_edge") || !s.contains("longest_edge"))
        throw file_error(where, "size must contain both shortest_edge and longest_edge");
      c.min_pixels = json_int(s["shortest_edge"], "size.shortest_edge", where);
      c.max_pixels = json_int(s["longest_edge"], "size.longest_edge", where);
    } else if (legacy) {
      if (s.contains("min_pixels")) c.min_pixels = json_int(s["min_pixels"], "size.min_pixels", where);
      if (s.contains("max_pixels")) c.max_pixels = json_int(s["max_pixels"], "size.max_pixels", where);
    } else {
      throw file_error(where, "size must contain shortest_edge and longest_edge (got " + s.dump() + ")");
    }
  }
  // HF: top-level min_pixels / max_pixels override size (backward compatibility).
  if (has("min_pixels")) c.min_pixels = json_int(j["min_pixels"], "min_pixels", where);
  if (has("max_pixels")) c.max_pixels = json_int(j["max_pixels"], "max_pixels", where);
  if (has("patch_size")) c.patch_size = json_int(j["patch_size"], "patch_size", where);
  if (has("temporal_patch_size"))
    c.temporal_patch_size = json_int(j["temporal_patch_size"], "temporal_patch_size", where);
  if (has("merge_size")) c.merge_size = json_int(j["merge_size"], "merge_size", where);
  if (has("image_mean")) c.mean = json_triple(j["image_mean"], "image_mean", where);
  if (has("image_std")) c.std = json_triple(j["image_std"], "image_std", where);
  if (has("rescale_factor")) c.rescale_factor = json_num(j["rescale_factor"], "rescale_factor", where);
  auto flag = [&](const char* k, bool& dst) {
    if (!has(k)) return;
    if (!j[k].is_boolean()) throw file_error(where, std::string(k) + " must be true or false (got " + j[k].dump() + ")");
    dst = j[k].get<bool>();
  };
  flag("do_resize", c.do_resize);
  flag("do_rescale", c.do_rescale);
  flag("do_normalize", c.do_normalize);
  // do_convert_rgb: our images are always RGB already, so either value gives the same pixels.
  if (has("resample")) {
    int64_t r = json_int(j["resample"], "resample", where);
    if (r != 3) throw file_error(where, "resample " + std::to_string(r) + " is not supported (only 3 = bicubic)");
  }
  c.validate(where);
  return c;
}

PreprocessorConfig PreprocessorConfig::load(const std::string& path) {
  // stat before opening: a FIFO would block the open (and a device would read forever)
  return parse(read_file_to_string(path, 16u << 20, "preprocessor config"), path);
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

namespace {

enum class Format { Unknown, PNG, JPEG, GIF, BMP, PNM, PSD, WebP, TIFF, HEIF, ICO, PNMAscii };

Format sniff(const uint8_t* p, size_t n) {
  auto starts = [&](const char* s, size_t len, size_t off = 0) {
    return n >= off + len && std::memcmp(p + off, s, len) == 0;
  };
  if (starts("\x89PNG\r\n\x1a\n", 8)) return Format::PNG;
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return Format::JPEG;
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return Format::GIF;
  if (starts("BM", 2) && n >= 14) return Format::BMP;
  if (n >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return Format::PNM;
  if (n >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '4') return Format::PNMAscii;
  if (starts("8BPS", 4)) return Format::PSD;
  if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return Format::WebP;
  if (starts("II*\0", 4) || starts("MM\0*", 4)) return Format::TIFF;
  if (starts("ftyp", 4, 4)) return Format::HEIF;
  if (n >= 6 && p[0] == 0 && p[1] == 0 && p[2] == 1 && p[3] == 0) return Format::ICO;
  return Format::Unknown;
}

const char* format_name(Format f) {
  switch (f) {
    case Format::PNG: return "PNG";
    case Format::JPEG: return "JPEG";
    case Format::GIF: return "GIF";
    case Format::BMP: return "BMP";
    case Format::PNM: return "PNM";
    case Format::PSD: return "PSD";
    case Format::WebP: return "WebP";
    case Format::TIFF: return "TIFF";
    case Format::HEIF: return "HEIF/AVIF";
    case Format::ICO: return "ICO";
    case Format::PNMAscii: return "ASCII PNM";
    default: return "unknown";
  }
}

// EXIF orientation from a TIFF structure (the payload of JPEG APP1 "Exif\0\0" or PNG eXIf).
int tiff_orientation(const uint8_t* p, size_t n) {
  if (n < 8) return 1;
  bool le;
  if (p[0] == 'I' && p[1] == 'I') le = true;
  else if (p[0] == 'M' && p[1] == 'M') le = false;
  else return 1;
  auto rd16 = [&](size_t o) -> uint32_t {
    return le ? (p[o] | (p[o + 1] << 8)) : ((p[o] << 8) | p[o + 1]);
  };
  auto rd32 = [&](size_t o) -> uint32_t {
    return le ? (uint32_t(p[o]) | (uint32_t(p[o + 1]) << 8) | (uint32_t(p[o + 2]) << 16) | (uint32_t(p[o + 3]) << 24))
              : ((uint32_t(p[o]) << 24) | (uint32_t(p[o + 1]) << 16) | (uint32_t(p[o + 2]) << 8) | uint32_t(p[o + 3]));
  };
  if (rd16(2) != 42) return 1;
  size_t ifd = rd32(4);
  if (ifd + 2 > n) return 1;
  uint32_t count = rd16(ifd);
  for (uint32_t i = 0; i < count; ++i) {
    size_t e = ifd + 2 + 12 * size_t(i);
    if (e + 12 > n) break;
    if (rd16(e) != 0x0112) continue;
    uint32_t type = rd16(e + 2);
    if (type == 3) return static_cast<int>(rd16(e + 8));  // SHORT, value inline
    if (type == 4) return static_cast<int>(rd32(e + 8));  // LONG (non-standard)
    return 1;
  }
  return 1;
}

int exif_orientation(const uint8_t* p, size_t n, Format fmt) {
  if (fmt == Format::JPEG) {
    size_t pos = 2;
    while (pos + 4 <= n) {
      if (p[pos] != 0xFF) break;
      uint8_t m = p[pos + 1];
      if (m == 0xFF) { ++pos; continue; }                          // fill byte
      if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { pos += 2; continue; }
      if (m == 0xDA || m == 0xD9) break;                            // start of scan / end
      size_t len = (size_t(p[pos + 2]) << 8) | p[pos + 3];
      if (len < 2 || pos + 2 + len > n) break;
      const uint8_t* seg = p + pos + 4;
      size_t seglen = len - 2;
      if (m == 0xE1 && seglen >= 6 && std::memcmp(seg, "Exif\0\0", 6) == 0)
        return tiff_orientation(seg + 6, seglen - 6);  // PIL reads the first Exif APP1
      pos += 2 + len;
    }
  } else if (fmt == Format::PNG) {
    size_t pos = 8;
    while (pos + 12 <= n) {
      size_t len = (size_t(p[pos]) << 24) | (size_t(p[pos + 1]) << 16) | (size_t(p[pos + 2]) << 8) | p[pos + 3];
      if (pos + 12 + len > n) break;
      if (std::memcmp(p + pos + 4, "eXIf", 4) == 0) return tiff_orientation(p + pos + 8, len);
      if (std::memcmp(p + pos + 4, "IEND", 4) == 0) break;
      pos += 12 + len;
    }
  }
  return 1;
}

// PIL.ImageOps.exif_transpose: 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise,
// 7 transverse, 8 rotate 90 counter-clockwise.
void apply_orientation(ImageRGB& img, int o) {
  if (o < 2 || o > 8) return;
  const int W = img.width, H = img.height;
  const bool swap = o >= 5;
  const int OW = swap ? H : W, OH = swap ? W : H;
  std::vector<uint8_t> out(img.rgb.size());
  for (int y = 0; y < OH; ++y) {
    for (int x = 0; x < OW; ++x) {
      int sy = 0, sx = 0;
      switch (o) {
        case 2: sy = y; sx = W - 1 - x; break;
        case 3: sy = H - 1 - y; sx = W - 1 - x; break;
        case 4: sy = H - 1 - y; sx = x; break;
        case 5: sy = x; sx = y; break;
        case 6: sy = H - 1 - x; sx = y; break;
        case 7: sy = H - 1 - x; sx = W - 1 - y; break;
        case 8: sy = x; sx = W - 1 - y; break;
      }
      std::memcpy(&out[(size_t(y) * OW + x) * 3], &img.rgb[(size_t(sy) * W + sx) * 3], 3);
    }
  }
  img.rgb.swap(out);
  img.width = OW;
  img.height = OH;
}

struct StbFree {
  void operator()(void* p) const { stbi_image_free(p); }
};

// JPEG through libjpeg(-turbo) with its defaults (islow IDCT, fancy upsampling), as PIL decodes:
// stb_image's IDCT, chroma upsampling and colour conversion differ from it by up to 3 levels on
// 10% of the values (tests/test_parity.cpp, Parity.Preprocessing), more than the processor's
// one-level tolerance. Returns false for what libjpeg cannot give as RGB (CMYK / YCCK: stb_image
// decodes those as before); throws on corrupt data.
struct JpegError {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  longjmp(e->jump, 1);
}

bool decode_jpeg(const uint8_t* bytes, size_t n, ImageRGB& img, std::string& error) {
  jpeg_decompress_struct d;
  JpegError err;
  d.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.output_message = [](j_common_ptr) {};  // warnings (e.g. premature end) are not printed
  err.message[0] = 0;
  std::vector<uint8_t>& out = img.rgb;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&d);
    error = err.message;
    return true;
  }
  jpeg_create_decompress(&d);
  jpeg_mem_src(&d, bytes, static_cast<unsigned long>(n));
  jpeg_read_header(&d, TRUE);
  if (d.jpeg_color_space == JCS_CMYK || d.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&d);
    return false;
  }
  d.out_color_space = JCS_RGB;
  jpeg_start_decompress(&d);
  const size_t w = d.output_width, h = d.output_height;
  out.resize(w * h * 3);
  while (d.output_scanline < d.output_height) {
    JSAMPROW row = out.data() + size_t(d.output_scanline) * w * 3;
    jpeg_read_scanlines(&d, &row, 1);
  }
  jpeg_finish_decompress(&d);
  jpeg_destroy_decompress(&d);
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  return true;
}

}  // namespace

ImageRGB decode_image(const uint8_t* bytes, size_t n, const std::string& name, bool exif) {
  if (n == 0) throw file_error(name, "empty file (not an image)");
  Format fmt = sniff(bytes, n);
  switch (fmt) {
    case Format::Unknown: throw file_error(name, "not an image (unknown format)");
    case Format::WebP:
    case Format::TIFF:
    case Format::HEIF:
    case Format::ICO:
    case Format::PNMAscii:
      throw file_error(name, std::string(format_name(fmt)) +
                                 " images are not supported (use PNG, JPEG, BMP, GIF, PNM or PSD)");
    default: break;
  }
  if (n > static_cast<size_t>(INT_MAX)) throw file_error(name, "file too large to decode (over 2 GiB)");
  const int len = static_cast<int>(n);
  stbi_set_flip_vertically_on_load_thread(0);
  {
    // Size from the header, before any pixel is allocated (a 20000x20000 PNG is 1.2 GB decoded).
    int iw = 0, ih = 0, ic = 0;
    if (fmt == Format::PNG && n >= 24) {
      // IHDR directly: stb_image's info refuses very large PNGs ("too large") without their size.
      auto be32 = [&](size_t o) { return (int64_t(bytes[o]) << 24) | (bytes[o + 1] << 16) | (bytes[o + 2] << 8) | bytes[o + 3]; };
      check_image_size(be32(16), be32(20), name);
    } else if (stbi_info_from_memory(bytes, len, &iw, &ih, &ic)) {
      check_image_size(iw, ih, name);
    }
  }

  auto fail = [&](const char* what) -> Error {
    const char* why = stbi_failure_reason();
    std::string r = why ? why : "unknown error";
    if (r == "0-pixel image") return file_error(name, "image has 0 pixels");
    return file_error(name, std::string(what) + " " + format_name(fmt) + " data (stb_image: " + r + ")");
  };

  // No stbi_info_from_memory() first: it tries every decoder, so its failure reason is the last
  // decoder's ("unknown image type"). stbi_load picks the decoder by signature and keeps its reason.
  ImageRGB img;
  img.source = name;
  // PIL opens 16-bit grayscale PNG as "I;16" and convert("RGB") clips to 255 instead of scaling.
  bool gray16 = fmt == Format::PNG && n >= 26 && bytes[24] == 16 && bytes[25] == 0;
  std::string jpeg_error;
  if (fmt == Format::JPEG && decode_jpeg(bytes, n, img, jpeg_error)) {
    if (!jpeg_error.empty()) throw file_error(name, "corrupt or truncated JPEG data (libjpeg: " + jpeg_error + ")");
    if (img.width <= 0 || img.height <= 0) throw file_error(name, "image has 0 pixels");
  } else if (gray16) {
    int cw = 0, ch = 0, cc = 0;
    std::unique_ptr<stbi_us, StbFree> px(stbi_load_16_from_memory(bytes, len, &cw, &ch, &cc, 1));
    if (!px) throw fail("corrupt or truncated");
    img.width = cw;
    img.height = ch;
    img.rgb.resize(size_t(cw) * ch * 3);
    for (size_t i = 0; i < size_t(cw) * ch; ++i) {
      uint8_t v = static_cast<uint8_t>(std::min<int>(px.get()[i], 255));
      img.rgb[3 * i] = img.rgb[3 * i + 1] = img.rgb[3 * i + 2] = v;
    }
  } else {
    int cw = 0, ch = 0, cc = 0;
    std::unique_ptr<stbi_uc, StbFree> px(stbi_load_from_memory(bytes, len, &cw, &ch, &cc, 3));
    if (!px) throw fail("corrupt or truncated");
    if (cw <= 0 || ch <= 0) throw file_error(name, "image has 0 pixels");
    img.width = cw;
    img.height = ch;
    img.rgb.assign(px.get(), px.get() + size_t(cw) * ch * 3);
  }
  check_image_size(img.width, img.height, name);  // also for headers stb_image could not read
  if (exif) apply_orientation(img, exif_orientation(bytes, n, fmt));
  return img;
}

ImageRGB load_image(const std::string& path, bool exif) {
  // 1 GiB: far beyond any image the pixel limits accept, but bounded.
  std::string bytes = read_file_to_string(path, uint64_t(1) << 30, "image");
  return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path, exif);
}

// ---------------------------------------------------------------------------------------------
// smart_resize
// ---------------------------------------------------------------------------------------------

double round_half_even(double x) {
  double f = std::floor(x);
  double d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0 ? f : f + 1;
}

std::pair<int64_t, int64_t> smart_resize(int64_t height, int64_t width, int64_t factor, int64_t min_pixels,
                                         int64_t max_pixels) {
  if (height <= 0 || width <= 0)
    throw Error("image has 0 pixels (" + std::to_string(width) + "x" + std::to_string(height) + ")");
  if (factor <= 0) throw Error("smart_resize: factor must be positive");
  const double H = static_cast<double>(height), W = static_cast<double>(width), F = static_cast<double>(factor);
  double ratio = std::max(H, W) / std::min(H, W);
  if (ratio > 200) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", ratio);
    throw Error("absolute aspect ratio must be smaller than 200, got " + std::string(buf) + " (" +
                std::to_string(width) + "x" + std::to_string(height) + ")");
  }
  int64_t h_bar = static_cast<int64_t>(round_half_even(H / F)) * factor;
  int64_t w_bar = static_cast<int64_t>(round_half_even(W / F)) * factor;
  const double HW = static_cast<double>(height * width);
  if (h_bar * w_bar > max_pixels) {
    double beta = std::sqrt(HW / static_cast<double>(max_pixels));
    h_bar = std::max(factor, static_cast<int64_t>(std::floor(H / beta / F)) * factor);
    w_bar = std::max(factor, static_cast<int64_t>(std::floor(W / beta / F)) * factor);
  } else if (h_bar * w_bar < min_pixels) {
    double beta = std::sqrt(static_cast<double>(min_pixels) / HW);
    h_bar = static_cast<int64_t>(std::ceil(H * beta / F)) * factor;
    w_bar = static_cast<int64_t>(std::ceil(W * beta / F)) * factor;
  }
  return {h_bar, w_bar};
}

// ---------------------------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------------------------

torch::Tensor image_to_tensor(const ImageRGB& img) {
  if (img.width <= 0 || img.height <= 0) throw file_error(img.source.empty() ? "image" : img.source, "image has 0 pixels");
  if (img.rgb.size() != size_t(img.width) * img.height * 3)
    throw file_error(img.source.empty() ? "image" : img.source, "pixel buffer size does not match width*height*3");
  auto hwc = torch::from_blob(const_cast<uint8_t*>(img.rgb.data()), {img.height, img.width, 3}, torch::kUInt8);
  return hwc.permute({2, 0, 1}).contiguous();
}

ImageRGB tensor_to_image(const torch::Tensor& t, const std::string& source) {
  auto x = t;
  if (x.dim() == 4 && x.size(0) == 1) x = x[0];
  if (x.dim() != 3 || x.size(0) != 3 || x.scalar_type() != torch::kUInt8)
    throw Error("tensor_to_image: expected a uint8 [3, H, W] tensor");
  auto hwc = x.to(torch::kCPU).permute({1, 2, 0}).contiguous();
  ImageRGB img;
  img.height = static_cast<int>(hwc.size(0));
  img.width = static_cast<int>(hwc.size(1));
  img.source = source;
  img.rgb.assign(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel());
  return img;
}

// ---------------------------------------------------------------------------------------------
// Antialiased bicubic resize on uint8: LibTorch's native CPU kernel, the one torchvision runs
// (an earlier C++ port for LibTorch 1.13 was bit-identical and 1.3-2.6x slower; removed).
// ---------------------------------------------------------------------------------------------

torch::Tensor resize_bicubic_aa_u8(const torch::Tensor& img, int64_t out_h, int64_t out_w) {
  if (img.scalar_type() != torch::kUInt8 || (img.dim() != 3 && img.dim() != 4) || !img.device().is_cpu())
    throw Error("resize_bicubic_aa_u8: expected a uint8 CPU tensor [C, H, W] or [N, C, H, W]");
  if (out_h <= 0 || out_w <= 0) throw Error("resize_bicubic_aa_u8: output size must be positive");
  if (img.size(-1) <= 0 || img.size(-2) <= 0) throw Error("resize_bicubic_aa_u8: input has 0 pixels");
  if (img.size(-2) == out_h && img.size(-1) == out_w) return img;
  auto x = img.dim() == 3 ? img.unsqueeze(0) : img;
  std::vector<int64_t> size{out_h, out_w};
  auto y = at::_upsample_bicubic2d_aa(x.contiguous(), at::IntArrayRef(size), /*align_corners=*/false);
  return img.dim() == 3 ? y[0] : y;
}

// ---------------------------------------------------------------------------------------------
// Normalization, patchify, pipeline
// ---------------------------------------------------------------------------------------------

torch::Tensor normalize_image(const torch::Tensor& chw_u8, const PreprocessorConfig& cfg) {
  const int64_t C = chw_u8.size(-3);
  if (C != 3) throw Error("normalize_image: expected 3 channels, got " + std::to_string(C));
  auto x = chw_u8.to(torch::kFloat32);
  if (cfg.do_normalize) {
    std::array<float, 3> m = cfg.mean, s = cfg.std;
    if (cfg.do_rescale) {  // HF fuses rescale into normalize: mean * (1/rescale_factor) in fp32
      const float inv = static_cast<float>(1.0 / cfg.rescale_factor);
      for (int c = 0; c < 3; ++c) {
        m[c] = m[c] * inv;
        s[c] = s[c] * inv;
      }
    }
    auto mt = torch::tensor(std::vector<float>(m.begin(), m.end()), torch::kFloat32).view({3, 1, 1});
    auto st = torch::tensor(std::vector<float>(s.begin(), s.end()), torch::kFloat32).view({3, 1, 1});
    return (x - mt) / st;
  }
  if (cfg.do_rescale) return x * static_cast<float>(cfg.rescale_factor);
  return x;
}

torch::Tensor patchify(const torch::Tensor& frames, const PreprocessorConfig& cfg) {
  const int64_t F = frames.size(0), C = frames.size(1), H = frames.size(2), W = frames.size(3);
  const int64_t T = cfg.temporal_patch_size, P = cfg.patch_size, M = cfg.merge_size;
  if (F % T != 0 || H % (P * M) != 0 || W % (P * M) != 0)
    throw Error("patchify: frames [" + std::to_string(F) + ", " + std::to_string(C) + ", " + std::to_string(H) +
                ", " + std::to_string(W) + "] do not tile into temporal " + std::to_string(T) + " x spatial " +
                std::to_string(P * M) + " patches");
  const int64_t gt = F / T, gh = H / P, gw = W / P;
  return frames.contiguous()
      .view({gt, T, C, gh / M, M, P, gw / M, M, P})
      .permute({0, 3, 6, 4, 7, 2, 1, 5, 8})
      .reshape({gt * gh * gw, C * T * P * P});
}

torch::Tensor unpatchify(const torch::Tensor& pv, int64_t gt, int64_t gh, int64_t gw, const PreprocessorConfig& cfg,
                         int64_t frame) {
  const int64_t T = cfg.temporal_patch_size, P = cfg.patch_size, M = cfg.merge_size;
  const int64_t C = pv.size(1) / (T * P * P);
  if (pv.size(0) != gt * gh * gw || pv.size(1) != C * T * P * P || frame < 0 || frame >= gt * T)
    throw Error("unpatchify: pixel_values shape does not match grid");
  auto f = pv.reshape({gt, gh / M, gw / M, M, M, C, T, P, P})
               .permute({0, 6, 5, 1, 3, 7, 2, 4, 8})
               .reshape({gt * T, C, gh * P, gw * P});
  return f[frame].contiguous();
}

torch::Tensor ProcessedImage::grid_thw() const {
  return torch::tensor(std::vector<int64_t>{grid_t, grid_h, grid_w}, torch::kInt64).view({1, 3});
}

namespace {

std::string label(const ImageRGB& img) { return img.source.empty() ? std::string("image") : img.source; }

std::pair<int64_t, int64_t> target_size(const ImageRGB& img, const PreprocessorConfig& cfg) {
  check_image_size(img.width, img.height, label(img));  // images made in memory (studio, scenes) too
  if (!cfg.do_resize) {
    if (img.height % cfg.factor() != 0 || img.width % cfg.factor() != 0)
      throw file_error(label(img), "do_resize is false but the size " + std::to_string(img.width) + "x" +
                                       std::to_string(img.height) + " is not a multiple of " +
                                       std::to_string(cfg.factor()));
    return {img.height, img.width};
  }
  try {
    return smart_resize(img.height, img.width, cfg.factor(), cfg.min_pixels, cfg.max_pixels);
  } catch (const Error& e) {
    throw file_error(label(img), e.what());
  }
}

}  // namespace

ImageRGB resized_image(const ImageRGB& img, const PreprocessorConfig& cfg) {
  cfg.validate("preprocessor config");
  auto [rh, rw] = target_size(img, cfg);
  return tensor_to_image(resize_bicubic_aa_u8(image_to_tensor(img), rh, rw), img.source);
}

ProcessedImage preprocess(const ImageRGB& img, const PreprocessorConfig& cfg) {
  cfg.validate("preprocessor config");
  auto [rh, rw] = target_size(img, cfg);
  torch::Tensor x = image_to_tensor(img);          // uint8 [3, H, W]
  x = resize_bicubic_aa_u8(x, rh, rw);             // unchanged if already (rh, rw)
  torch::Tensor f = normalize_image(x, cfg);       // f32 [3, rh, rw]
  const int64_t T = cfg.temporal_patch_size;
  torch::Tensor frames = f.unsqueeze(0);           // one frame
  if (1 % T != 0) frames = torch::cat({frames, frames.slice(0, 0, 1).repeat({T - 1, 1, 1, 1})}, 0);
  ProcessedImage out;
  out.pixel_values = patchify(frames, cfg);
  out.grid_t = frames.size(0) / T;
  out.grid_h = rh / cfg.patch_size;
  out.grid_w = rw / cfg.patch_size;
  out.resized_h = rh;
  out.resized_w = rw;
  out.orig_h = img.height;
  out.orig_w = img.width;
  out.merge_size = cfg.merge_size;
  return out;
}

int64_t ImageBatch::total_tokens() const {
  int64_t s = 0;
  for (auto n : num_tokens) s += n;
  return s;
}

ImageBatch concat_images(const std::vector<ProcessedImage>& images) {
  ImageBatch b;
  if (images.empty()) {
    b.pixel_values = torch::empty({0, 0}, torch::kFloat32);
    b.grid_thw = torch::empty({0, 3}, torch::kInt64);
    return b;
  }
  std::vector<torch::Tensor> pv, g;
  for (const auto& im : images) {
    if (im.pixel_values.size(1) != images[0].pixel_values.size(1))
      throw Error("concat_images: images have different patch dimensions");
    pv.push_back(im.pixel_values);
    g.push_back(im.grid_thw());
    b.num_tokens.push_back(im.num_tokens());
  }
  b.pixel_values = torch::cat(pv, 0);
  b.grid_thw = torch::cat(g, 0);
  return b;
}

ImageBatch preprocess_images(const std::vector<ImageRGB>& images, const PreprocessorConfig& cfg) {
  std::vector<ProcessedImage> v;
  v.reserve(images.size());
  for (const auto& im : images) v.push_back(preprocess(im, cfg));
  return concat_images(v);
}

}  // namespace pvm
