#include "engine/base/gif.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"

namespace pvm {

// ---- palette ----

namespace {

// Occupied bin of the 6-bit-per-channel histogram: population and sums of the exact colours.
struct Bin {
  uint32_t key;
  uint32_t n = 0;
  double s[3] = {0, 0, 0};
  double sq = 0;  // sum of r^2 + g^2 + b^2
  double mean(int c) const { return s[c] / n; }
};

struct Box {
  size_t begin, end;  // range of bins
  double sse;         // summed squared distance of its pixels to its mean
};

double box_sse(const std::vector<Bin>& bins, size_t b, size_t e) {
  double n = 0, s[3] = {0, 0, 0}, sq = 0;
  for (size_t i = b; i < e; ++i) {
    n += bins[i].n, sq += bins[i].sq;
    for (int c = 0; c < 3; ++c) s[c] += bins[i].s[c];
  }
  return n > 0 ? sq - (s[0] * s[0] + s[1] * s[1] + s[2] * s[2]) / n : 0;
}

}  // namespace

GifPalette gif_quantize(const uint8_t* rgb, size_t pixels, int max_colours) {
  max_colours = std::clamp(max_colours, 2, 256);
  GifPalette out;
  out.index.resize(pixels);
  // Few colours (UI frames often are): keep them exactly.
  {
    std::unordered_map<uint32_t, uint8_t> seen;
    bool few = true;
    for (size_t i = 0; i < pixels && few; ++i) {
      const uint32_t c = uint32_t(rgb[i * 3]) << 16 | uint32_t(rgb[i * 3 + 1]) << 8 | rgb[i * 3 + 2];
      auto it = seen.find(c);
      if (it == seen.end()) {
        if (int(seen.size()) == max_colours) {
          few = false;
          break;
        }
        it = seen.emplace(c, uint8_t(seen.size())).first;
        out.rgb.insert(out.rgb.end(), {rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2]});
      }
      out.index[i] = it->second;
    }
    if (few) {
      if (out.rgb.empty()) out.rgb = {0, 0, 0};
      return out;
    }
    out.rgb.clear();
  }
  // Median cut on the occupied bins of a 6-bit histogram.
  auto key_of = [&](size_t i) {
    return uint32_t(rgb[i * 3] >> 2) << 12 | uint32_t(rgb[i * 3 + 1] >> 2) << 6 | uint32_t(rgb[i * 3 + 2] >> 2);
  };
  std::vector<int32_t> slot(1u << 18, -1);
  std::vector<Bin> bins;
  for (size_t i = 0; i < pixels; ++i) {
    const uint32_t k = key_of(i);
    if (slot[k] < 0) slot[k] = int32_t(bins.size()), bins.push_back(Bin{k});
    Bin& b = bins[size_t(slot[k])];
    ++b.n;
    for (int c = 0; c < 3; ++c) {
      const double v = rgb[i * 3 + c];
      b.s[c] += v, b.sq += v * v;
    }
  }
  std::vector<Box> boxes = {{0, bins.size(), box_sse(bins, 0, bins.size())}};
  while (int(boxes.size()) < max_colours) {
    size_t pick = boxes.size();
    for (size_t j = 0; j < boxes.size(); ++j)
      if (boxes[j].end - boxes[j].begin >= 2 && boxes[j].sse > 0 && (pick == boxes.size() || boxes[j].sse > boxes[pick].sse))
        pick = j;
    if (pick == boxes.size()) break;
    Box bx = boxes[pick];
    // The channel with the largest population-weighted variance.
    int axis = 0;
    double best = -1;
    for (int c = 0; c < 3; ++c) {
      double n = 0, s = 0, s2 = 0;
      for (size_t i = bx.begin; i < bx.end; ++i) {
        const double m = bins[i].mean(c);
        n += bins[i].n, s += bins[i].n * m, s2 += bins[i].n * m * m;
      }
      const double var = s2 / n - (s / n) * (s / n);
      if (var > best) best = var, axis = c;
    }
    std::sort(bins.begin() + long(bx.begin), bins.begin() + long(bx.end),
              [axis](const Bin& a, const Bin& b) { return a.mean(axis) < b.mean(axis); });
    double total = 0, acc = 0;
    for (size_t i = bx.begin; i < bx.end; ++i) total += bins[i].n;
    size_t cut = bx.begin + 1;
    for (size_t i = bx.begin; i < bx.end - 1; ++i) {
      acc += bins[i].n;
      cut = i + 1;
      if (acc >= total / 2) break;
    }
    boxes[pick] = {bx.begin, cut, box_sse(bins, bx.begin, cut)};
    boxes.push_back({cut, bx.end, box_sse(bins, cut, bx.end)});
  }
  for (const Box& bx : boxes) {
    double n = 0, s[3] = {0, 0, 0};
    for (size_t i = bx.begin; i < bx.end; ++i) {
      n += bins[i].n;
      for (int c = 0; c < 3; ++c) s[c] += bins[i].s[c];
    }
    for (int c = 0; c < 3; ++c) out.rgb.push_back(uint8_t(std::clamp(s[c] / n + 0.5, 0.0, 255.0)));
  }
  // Each bin to the palette colour nearest its mean (not just its box's: boxes are axis cuts).
  const int nc = out.colours();
  std::vector<uint8_t> bin_index(bins.size());
  for (size_t i = 0; i < bins.size(); ++i) {
    int bi = 0;
    double bd = 1e30;
    for (int p = 0; p < nc; ++p) {
      double d = 0;
      for (int c = 0; c < 3; ++c) {
        const double x = bins[i].mean(c) - out.rgb[size_t(p) * 3 + c];
        d += x * x;
      }
      if (d < bd) bd = d, bi = p;
    }
    slot[bins[i].key] = int32_t(i);  // the sort moved the bins
    bin_index[i] = uint8_t(bi);
  }
  for (size_t i = 0; i < pixels; ++i) out.index[i] = bin_index[size_t(slot[key_of(i)])];
  return out;
}

// ---- LZW ----

std::vector<uint8_t> gif_lzw(const std::vector<uint8_t>& index, int min_code_size) {
  const int clear = 1 << min_code_size, eoi = clear + 1;
  std::vector<uint8_t> out, block;
  block.reserve(255);
  uint32_t acc = 0;
  int nbits = 0;
  auto flush_block = [&] {
    if (block.empty()) return;
    out.push_back(uint8_t(block.size()));
    out.insert(out.end(), block.begin(), block.end());
    block.clear();
  };
  auto put = [&](int code, int size) {  // codes are packed least significant bit first
    acc |= uint32_t(code) << nbits;
    nbits += size;
    while (nbits >= 8) {
      block.push_back(uint8_t(acc & 255));
      acc >>= 8, nbits -= 8;
      if (block.size() == 255) flush_block();
    }
  };
  // Dictionary (prefix code, next index) -> code, open addressing.
  constexpr uint32_t kHash = 8192;
  std::vector<int32_t> hkey(kHash, -1);
  std::vector<int16_t> hcode(kHash, 0);
  auto slot_of = [&](int32_t key) {
    uint32_t h = (uint32_t(key) * 2654435761u) >> 19;  // 13 bits
    while (hkey[h] >= 0 && hkey[h] != key) h = (h + 1) & (kHash - 1);
    return h;
  };
  int size = min_code_size + 1, last = eoi;  // `last`: the highest code assigned
  put(clear, size);
  if (!index.empty()) {
    int cur = index[0];
    for (size_t i = 1; i < index.size(); ++i) {
      const int k = index[i];
      const int32_t key = cur << 8 | k;
      const uint32_t h = slot_of(key);
      if (hkey[h] == key) {
        cur = hcode[h];
        continue;
      }
      put(cur, size);
      hkey[h] = key, hcode[h] = int16_t(++last);
      if (last >= (1 << size)) ++size;  // the decoder widens when it adds the same entry
      if (last == 4095) {               // table full: start over
        put(clear, size);
        std::fill(hkey.begin(), hkey.end(), -1);
        size = min_code_size + 1, last = eoi;
      }
      cur = k;
    }
    put(cur, size);
    // Reading that last code the decoder adds the entry `last` too; it widens when that fills
    // the current width, and then reads the end code that wide.
    if (last != eoi && last + 1 == (1 << size) && size < 12) ++size;
  }
  put(eoi, size);
  if (nbits > 0) block.push_back(uint8_t(acc & 255));
  flush_block();
  out.push_back(0);  // block terminator
  return out;
}

// ---- file ----

namespace {
void le16(std::vector<uint8_t>& b, int v) { b.push_back(uint8_t(v & 255)), b.push_back(uint8_t((v >> 8) & 255)); }
}  // namespace

GifWriter::GifWriter(const std::string& path, int width, int height, int loop) : path_(path), w_(width), h_(height) {
  if (width < 1 || height < 1 || width > 65535 || height > 65535)
    throw file_error(path, "GIF frames must be 1..65535 pixels on a side, got " + std::to_string(width) + "x" +
                               std::to_string(height));
  check_output_file(path, "GIF");
  out_ = std::make_unique<AtomicWriter>(path);
  std::vector<uint8_t> b = {'G', 'I', 'F', '8', '9', 'a'};
  le16(b, width), le16(b, height);
  b.insert(b.end(), {0x00, 0, 0});  // no global colour table, background 0, square pixels
  if (loop >= 0) {
    b.insert(b.end(), {0x21, 0xFF, 0x0B, 'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0', 0x03, 0x01});
    le16(b, std::min(loop, 65535));
    b.push_back(0);
  }
  out_->write(b.data(), b.size());
}

GifWriter::~GifWriter() = default;  // AtomicWriter removes the temp file unless committed

void GifWriter::add_frame(const uint8_t* rgb, int delay_cs) {
  if (!out_) throw file_error(path_, "GIF already closed");
  // The rectangle that differs from the previous frame (everything for the first one).
  int x0 = 0, y0 = 0, x1 = w_, y1 = h_;
  const size_t n = size_t(w_) * h_ * 3;
  if (!prev_.empty()) {
    x0 = w_, y0 = h_, x1 = 0, y1 = 0;
    for (int y = 0; y < h_; ++y) {
      const uint8_t* a = rgb + size_t(y) * w_ * 3;
      const uint8_t* p = prev_.data() + size_t(y) * w_ * 3;
      if (std::memcmp(a, p, size_t(w_) * 3) == 0) continue;
      int l = 0, r = w_ - 1;
      while (std::memcmp(a + l * 3, p + l * 3, 3) == 0) ++l;
      while (std::memcmp(a + r * 3, p + r * 3, 3) == 0) --r;
      x0 = std::min(x0, l), x1 = std::max(x1, r + 1), y0 = std::min(y0, y), y1 = y + 1;
    }
    if (x1 <= x0) x0 = y0 = 0, x1 = y1 = 1;  // unchanged: one pixel keeps the frame's delay
  }
  const int fw = x1 - x0, fh = y1 - y0;
  // Inside the rectangle, pixels equal to the previous frame become transparent (they keep what is
  // shown): long runs of one index, which LZW packs into few codes.
  std::vector<uint8_t> changed_rgb;
  std::vector<uint8_t> changed(size_t(fw) * fh, 1);
  changed_rgb.reserve(size_t(fw) * fh * 3);
  bool any_same = false;
  for (int y = 0; y < fh; ++y)
    for (int x = 0; x < fw; ++x) {
      const size_t o = (size_t(y0 + y) * w_ + x0 + x) * 3;
      if (!prev_.empty() && std::memcmp(rgb + o, prev_.data() + o, 3) == 0) {
        changed[size_t(y) * fw + x] = 0, any_same = true;
        continue;
      }
      changed_rgb.insert(changed_rgb.end(), rgb + o, rgb + o + 3);
    }
  if (changed_rgb.empty()) changed_rgb.assign(rgb + (size_t(y0) * w_ + x0) * 3, rgb + (size_t(y0) * w_ + x0) * 3 + 3);
  const GifPalette pal = gif_quantize(changed_rgb.data(), changed_rgb.size() / 3, any_same ? 255 : 256);
  const int transparent = any_same ? pal.colours() : -1;
  std::vector<uint8_t> index(size_t(fw) * fh);
  for (size_t i = 0, k = 0; i < index.size(); ++i) index[i] = changed[i] || !any_same ? pal.index[k++] : uint8_t(transparent);
  const int entries = pal.colours() + (any_same ? 1 : 0);
  int bits = 1;
  while ((1 << bits) < entries) ++bits;
  const int mcs = std::max(2, bits);
  // Graphic control: disposal 1 (keep the frame), the transparent index when there is one.
  std::vector<uint8_t> b = {0x21, 0xF9, 0x04, uint8_t(any_same ? 0x05 : 0x04)};
  le16(b, std::max(2, std::min(delay_cs, 65535)));
  b.insert(b.end(), {uint8_t(any_same ? transparent : 0), 0});
  b.push_back(0x2C);  // image descriptor with a local colour table of 2^bits entries
  le16(b, x0), le16(b, y0), le16(b, fw), le16(b, fh);
  b.push_back(uint8_t(0x80 | (bits - 1)));
  b.insert(b.end(), pal.rgb.begin(), pal.rgb.end());
  b.resize(b.size() + (size_t(3) << bits) - pal.rgb.size(), 0);
  b.push_back(uint8_t(mcs));
  const std::vector<uint8_t> data = gif_lzw(index, mcs);
  b.insert(b.end(), data.begin(), data.end());
  out_->write(b.data(), b.size());
  prev_.assign(rgb, rgb + n);
  ++frames_;
}

void GifWriter::close() {
  if (!out_) return;
  if (frames_ == 0) throw file_error(path_, "no frames to write");
  const uint8_t trailer = 0x3B;
  out_->write(&trailer, 1);
  out_->commit();
  out_.reset();
}

}  // namespace pvm
