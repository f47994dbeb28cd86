// Animated GIF writer (GIF89a) for frames exported from the studio (gaze replay): RGB8 frames,
// each reduced to a local palette of at most 256 colours (exact when the frame has no more
// distinct colours, else median cut), LZW-coded, looping. Only the rectangle that changed since
// the previous frame is stored (the rest is kept: disposal "do not dispose"), and in it the pixels
// that did not change are transparent, so a replay whose frames differ in a heatmap and a
// highlighted word stays small. No GUI, no torch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pvm {

class AtomicWriter;

// Palette (rgb triples, at most max_colours of them) and one palette index per pixel.
struct GifPalette {
  std::vector<uint8_t> rgb;    // [colours * 3]
  std::vector<uint8_t> index;  // [pixels]
  int colours() const { return int(rgb.size() / 3); }
};

// Frames with at most max_colours distinct colours keep them exactly; others get a median cut
// (boxes split where the summed squared error is largest, at the population median of their widest
// channel, on a 6-bit-per-channel histogram) and every pixel the nearest palette colour.
GifPalette gif_quantize(const uint8_t* rgb, size_t pixels, int max_colours = 256);

// GIF's variable-length LZW code stream for `index` (each < 2^min_code_size), as the image data
// sub-blocks that follow the LZW minimum code size byte (terminator included).
std::vector<uint8_t> gif_lzw(const std::vector<uint8_t>& index, int min_code_size);

class GifWriter {
 public:
  // Creates `path` (atomically: the file appears when close() succeeds) for width x height frames.
  // loop: 0 = forever, n > 0 = n extra plays, -1 = play once (no loop extension).
  // Throws pvm::Error "<path>: ..." on a bad size or an unwritable path.
  GifWriter(const std::string& path, int width, int height, int loop = 0);
  ~GifWriter();  // without close() the partial file is removed
  GifWriter(const GifWriter&) = delete;
  GifWriter& operator=(const GifWriter&) = delete;

  // rgb: height * width * 3 bytes, top row first. delay_cs: display time in 1/100 s (GIF's unit;
  // values under 2 are raised to 2, which viewers honour).
  void add_frame(const uint8_t* rgb, int delay_cs);
  void close();  // writes the trailer and commits; throws pvm::Error when there is no frame
  int frames() const { return frames_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int w_, h_;
  int frames_ = 0;
  std::vector<uint8_t> prev_;  // previous frame (source pixels), for the changed rectangle
  std::unique_ptr<AtomicWriter> out_;
};

}  // namespace pvm
