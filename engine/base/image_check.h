// The one image-size check, shared by the CLI, the trainer's data loading and the studio (which
// links only pvm_base): at least one pixel, at most kMaxImagePixels (PIL's decompression-bomb
// limit: what PIL refuses we refuse) and an aspect ratio of at most kMaxAspectRatio (Qwen's
// processor rejects more; such an image would become 0 visual tokens).
#pragma once
#include <cstdint>
#include <string>

namespace pvm {

constexpr int64_t kMaxImagePixels = 178956970;
constexpr double kMaxAspectRatio = 200.0;

// Throws pvm::Error "<where>: <problem> (WxH)".
void check_image_size(int64_t width, int64_t height, const std::string& where);

}  // namespace pvm
