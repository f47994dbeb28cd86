// Image loading and Qwen3-VL image preprocessing (HF `Qwen2VLImageProcessorFast`, transformers 4.57),
// reproduced step by step as in docs/MODEL.md#image-preprocessing:
//
//   load (stb_image) -> RGB uint8 (alpha dropped, gray expanded, JPEG EXIF orientation applied)
//   -> smart_resize (factor = patch*merge, Python round-half-to-even)
//   -> antialiased bicubic resize on uint8 CHW (PyTorch CPU uint8 kernel semantics)
//   -> (x - mean/rescale) / (std/rescale) in fp32 (= (x-127.5)/127.5 for Qwen3-VL)
//   -> the single frame is repeated to temporal_patch_size frames
//   -> patchify with the exact HF permutation -> pixel_values [gt*gh*gw, C*T*P*P] f32, grid_thw.
//
// Known differences from the Python reference:
//  * Resize: LibTorch >= 2.1 has a native uint8 antialiased bicubic CPU kernel; we call it when it
//    is present (it *is* the reference kernel). LibTorch 1.13 has none ("compute_indices_weights_aa"
//    not implemented for 'Byte'), so there we run our own C++ port of that kernel's algorithm
//    (double weights, PIL/Keys a=-0.5 filter, int16 fixed-point weights with the same adaptive
//    precision, horizontal pass then vertical pass through a rounded+clamped uint8 buffer). It is
//    designed to be bit-identical; tests compare it to the native kernel where one exists.
//  * Decoding uses stb_image, PIL uses libjpeg(-turbo)/zlib/etc. PNG/BMP/GIF pixels are identical;
//    baseline/progressive JPEG pixels can differ by a few units (different IDCT / colour conversion
//    rounding). CMYK JPEGs and GIF transparent pixels (stb: black, PIL: palette colour) differ too.
//  * 16-bit grayscale PNGs are clipped to 255 like PIL's "I;16" -> "RGB" convert; other 16-bit PNGs
//    keep the high byte, which is what PIL does as well.
//  * EXIF orientation (JPEG APP1, PNG eXIf) is applied like transformers' load_image
//    (PIL.ImageOps.exif_transpose). Pass exif_orientation=false to match a bare PIL.Image.open().
//  * stb_image's global "flip vertically" flag is overridden for the loading thread (we never flip).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/base/image_check.h"
#include "engine/torch_pch.h"

namespace pvm {

// preprocessor_config.json. Defaults are the Qwen3-VL Instruct values (docs/MODEL.md#image-preprocessing); fields missing
// from a file keep these defaults.
struct PreprocessorConfig {
  int64_t min_pixels = 65536;     // size.shortest_edge (legacy: min_pixels)
  int64_t max_pixels = 16777216;  // size.longest_edge  (legacy: max_pixels)
  int64_t patch_size = 16;
  int64_t temporal_patch_size = 2;
  int64_t merge_size = 2;
  std::array<float, 3> mean{0.5f, 0.5f, 0.5f};  // image_mean
  std::array<float, 3> std{0.5f, 0.5f, 0.5f};   // image_std
  double rescale_factor = 1 / 255.0;
  bool do_resize = true, do_rescale = true, do_normalize = true;

  int64_t factor() const { return patch_size * merge_size; }
  // Throws pvm::Error "<where>: <field> ..." for bad values.
  void validate(const std::string& where) const;
  // Reads a preprocessor_config.json. Legacy top-level min_pixels/max_pixels override size (as in
  // HF); size may also use the legacy keys min_pixels/max_pixels. A single number for image_mean /
  // image_std applies to all channels. Unsupported settings (resample != 3 bicubic,
  // do_convert_rgb=false) are errors naming the file.
  static PreprocessorConfig load(const std::string& path);
  static PreprocessorConfig parse(const std::string& json_text, const std::string& where);
};

// 8-bit RGB image, rows top to bottom, HWC interleaved.
struct ImageRGB {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3
  std::string source;        // file name or label, used in error messages (may be empty)

  uint8_t at(int y, int x, int c) const { return rgb[(static_cast<size_t>(y) * width + x) * 3 + c]; }
};

// Decodes PNG, JPEG (baseline/progressive), BMP, GIF (first frame), PNM (P5/P6) and PSD, like
// PIL .convert("RGB"): alpha is dropped (no compositing), gray is replicated, palettes expanded.
// Errors (pvm::Error, one line, prefixed with the path/name): missing or unreadable file, not an
// image ("<path>: not an image (unknown format)"), known-but-unsupported formats (WebP, TIFF, ...),
// corrupt or truncated data, 0 pixels.
// Every decode checks the size first (from the header, before any pixel is allocated) with
// check_image_size (engine/base/image_check.h).
ImageRGB load_image(const std::string& path, bool exif_orientation = true);
ImageRGB decode_image(const uint8_t* bytes, size_t n, const std::string& name, bool exif_orientation = true);

// HF smart_resize (transformers 4.57, docs/MODEL.md#image-preprocessing step 2): returns (height, width), both multiples of
// factor. Double arithmetic, Python round-half-to-even. Throws pvm::Error for 0 pixels, aspect ratio
// over 200, or non-positive factor/min/max.
std::pair<int64_t, int64_t> smart_resize(int64_t height, int64_t width, int64_t factor, int64_t min_pixels,
                                         int64_t max_pixels);
// Python's round() for doubles (ties to even).
double round_half_even(double x);

// uint8 [3, H, W] view of an image (a copy; contiguous).
torch::Tensor image_to_tensor(const ImageRGB& img);
// uint8 [3, H, W] (or [1, 3, H, W]) tensor -> ImageRGB.
ImageRGB tensor_to_image(const torch::Tensor& chw_u8, const std::string& source = "");

// Antialiased bicubic resize of uint8 images, align_corners=false, exactly what
// torchvision.transforms.v2.functional.resize(uint8 CPU, BICUBIC, antialias=True) computes.
// Input [C, H, W] or [N, C, H, W] uint8 on CPU; output has the same rank. Same size: returns the
// input unchanged. LibTorch's native uint8 kernel.
torch::Tensor resize_bicubic_aa_u8(const torch::Tensor& img, int64_t out_h, int64_t out_w);

// uint8 [C, H, W] -> float32 [C, H, W] with HF's fused rescale+normalize: mean' = f32(mean) *
// f32(1/rescale_factor), std' likewise, then (x - mean') / std' in fp32 (sub, then div).
torch::Tensor normalize_image(const torch::Tensor& chw_u8, const PreprocessorConfig& cfg);

struct ProcessedImage {
  torch::Tensor pixel_values;  // [grid_t*grid_h*grid_w, C*T*P*P] float32, CPU
  int64_t grid_t = 0, grid_h = 0, grid_w = 0;
  int64_t resized_h = 0, resized_w = 0;
  int64_t orig_h = 0, orig_w = 0;
  int64_t merge_size = 2;
  int64_t num_tokens() const { return grid_t * grid_h * grid_w / (merge_size * merge_size); }
  torch::Tensor grid_thw() const;  // int64 [1, 3]
};

// Frames float32 [F, C, H, W] (F a multiple of temporal_patch_size) -> pixel_values with the exact
// HF flattening (docs/MODEL.md#image-preprocessing step 6).
torch::Tensor patchify(const torch::Tensor& frames, const PreprocessorConfig& cfg);
// The inverse for one image: pixel_values -> frame tt (0..T-1) as float32 [C, H, W].
torch::Tensor unpatchify(const torch::Tensor& pixel_values, int64_t grid_t, int64_t grid_h, int64_t grid_w,
                         const PreprocessorConfig& cfg, int64_t frame = 0);

// Full pipeline for one image. Errors name img.source.
ProcessedImage preprocess(const ImageRGB& img, const PreprocessorConfig& cfg);
// The resized uint8 image that preprocess() feeds to normalization (for display / debugging).
ImageRGB resized_image(const ImageRGB& img, const PreprocessorConfig& cfg);

// Several images, as the HF processor returns them: pixel_values concatenated along dim 0 in input
// order, image_grid_thw int64 [N, 3].
struct ImageBatch {
  torch::Tensor pixel_values;  // [sum rows, D] float32
  torch::Tensor grid_thw;      // [N, 3] int64
  std::vector<int64_t> num_tokens;  // per image
  int64_t total_tokens() const;
};
ImageBatch concat_images(const std::vector<ProcessedImage>& images);
ImageBatch preprocess_images(const std::vector<ImageRGB>& images, const PreprocessorConfig& cfg);

}  // namespace pvm
