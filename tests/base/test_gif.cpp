// GIF writer (engine/base/gif.h) against the reference decoder, Pillow, run through $PVM_PYTHON:
// frames with at most 256 colours come back exactly (LZW, including dictionary resets, and the
// changed-rectangle frames), frames with more come back close (median cut), delays and looping
// are what was asked; bad sizes and paths are one-line errors naming the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "engine/base/error.h"
#include "engine/base/gif.h"

namespace fs = std::filesystem;

namespace {

std::string tmp(const std::string& name) {
  return (fs::temp_directory_path() / ("pvm_gif_" + std::to_string(::getpid()) + "_" + name)).string();
}

// Pillow's view of a GIF: frames as full RGB images (after disposal and compositing), their
// durations (ms) and the loop count.
struct Decoded {
  int frames = 0, w = 0, h = 0, loop = -1;
  std::vector<int> duration_ms;
  std::vector<std::vector<uint8_t>> rgb;
  std::string error;
};

Decoded decode_with_pillow(const std::string& gif) {
  Decoded d;
  const char* py = std::getenv("PVM_PYTHON");
  if (!py || !*py) {
    d.error = "PVM_PYTHON is not set";
    return d;
  }
  const std::string raw = gif + ".raw", meta = gif + ".txt";
  const std::string script =
      "import sys\nfrom PIL import Image\nim = Image.open(sys.argv[1])\nassert im.format == 'GIF', im.format\n"
      "out = open(sys.argv[2], 'wb')\nd = []\nfor i in range(im.n_frames):\n    im.seek(i)\n"
      "    d.append(im.info.get('duration', -1))\n    out.write(im.convert('RGB').tobytes())\n"
      "print(im.n_frames, im.size[0], im.size[1], im.info.get('loop', -1), *d)\n";
  const std::string py_file = gif + ".py";
  std::ofstream(py_file) << script;
  const std::string cmd = "'" + std::string(py) + "' '" + py_file + "' '" + gif + "' '" + raw + "' > '" + meta + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream m(meta);
  std::stringstream ss;
  ss << m.rdbuf();
  if (rc != 0) {
    d.error = "Pillow could not decode " + gif + ": " + ss.str();
    return d;
  }
  ss >> d.frames >> d.w >> d.h >> d.loop;
  for (int i = 0; i < d.frames; ++i) {
    int x = 0;
    ss >> x;
    d.duration_ms.push_back(x);
  }
  std::ifstream r(raw, std::ios::binary);
  for (int i = 0; i < d.frames; ++i) {
    d.rgb.emplace_back(size_t(d.w) * d.h * 3);
    r.read(reinterpret_cast<char*>(d.rgb.back().data()), std::streamsize(d.rgb.back().size()));
  }
  fs::remove(raw), fs::remove(meta), fs::remove(py_file);
  return d;
}

bool allow_missing_assets() {
  const char* v = std::getenv("PVM_ALLOW_MISSING_ASSETS");
  return v && std::string(v) == "1";
}

#define REQUIRE_PILLOW()                                                                           \
  do {                                                                                             \
    const char* py_ = std::getenv("PVM_PYTHON");                                                   \
    if (!py_ || !*py_) {                                                                           \
      if (allow_missing_assets()) GTEST_SKIP() << "PVM_PYTHON is not set";               \
      FAIL() << "PVM_PYTHON is not set (the set-up's venv has Pillow), or PVM_ALLOW_MISSING_ASSETS=1"; \
    }                                                                                              \
  } while (0)

// A strict LZW decoder written from the GIF89a specification (appendix F): the code width grows
// when the next free code reaches 2^width, and the stream must end with the end code read at the
// width in force (Pillow stops once it has all pixels and would not notice a wrong end code).
bool strict_lzw_decode(const std::vector<uint8_t>& blocks, int mcs, size_t pixels, std::vector<uint8_t>* out,
                       std::string* why) {
  std::vector<uint8_t> bytes;
  size_t p = 0;
  while (p < blocks.size() && blocks[p] != 0) {
    bytes.insert(bytes.end(), blocks.begin() + long(p) + 1, blocks.begin() + long(p) + 1 + blocks[p]);
    p += size_t(blocks[p]) + 1;
  }
  if (p + 1 != blocks.size()) return *why = "no block terminator at the end", false;
  const int clear = 1 << mcs, eoi = clear + 1;
  std::vector<std::vector<uint8_t>> dict;
  int width = mcs + 1;
  size_t bit = 0;
  auto read = [&](int w) {
    int v = 0;
    for (int i = 0; i < w; ++i, ++bit)
      if (bit / 8 < bytes.size() && (bytes[bit / 8] >> (bit % 8) & 1)) v |= 1 << i;
    return v;
  };
  auto reset = [&] {
    dict.assign(size_t(clear) + 2, {});
    for (int i = 0; i < clear; ++i) dict[size_t(i)] = {uint8_t(i)};
    width = mcs + 1;
  };
  reset();
  int prev = -1;
  out->clear();
  while (true) {
    if (bit + size_t(width) > bytes.size() * 8) return *why = "stream ends without the end code", false;
    const int code = read(width);
    if (code == clear) {
      reset(), prev = -1;
      continue;
    }
    if (code == eoi) break;
    std::vector<uint8_t> entry;
    if (code < int(dict.size())) {
      entry = dict[size_t(code)];
    } else if (code == int(dict.size()) && prev >= 0) {
      entry = dict[size_t(prev)];
      entry.push_back(entry[0]);
    } else {
      return *why = "code " + std::to_string(code) + " beyond the table (" + std::to_string(dict.size()) + ")", false;
    }
    if (prev >= 0 && dict.size() < 4096) {
      std::vector<uint8_t> add = dict[size_t(prev)];
      add.push_back(entry[0]);
      dict.push_back(add);
    }
    if (int(dict.size()) == (1 << width) && width < 12) ++width;
    out->insert(out->end(), entry.begin(), entry.end());
    prev = code;
  }
  if (out->size() != pixels) return *why = "decoded " + std::to_string(out->size()) + " indices", false;
  if ((bytes.size() * 8 - bit) >= 8) return *why = "bytes after the end code", false;
  return true;
}

}  // namespace

TEST(Gif, LzwMatchesAStrictSpecDecoder) {
  std::mt19937 rng(3);
  for (int mcs : {2, 3, 5, 8})
    for (size_t n : {size_t(1), size_t(2), size_t(3), size_t(7), size_t(100), size_t(1000), size_t(5000),
                     size_t(20000), size_t(70000)})
      for (int runny = 0; runny < 2; ++runny) {
        std::vector<uint8_t> idx(n);
        const int k = 1 << mcs;
        for (size_t i = 0; i < n; ++i) idx[i] = runny && i > 0 && rng() % 4 ? idx[i - 1] : uint8_t(rng() % k);
        std::vector<uint8_t> back;
        std::string why;
        ASSERT_TRUE(strict_lzw_decode(pvm::gif_lzw(idx, mcs), mcs, n, &back, &why))
            << "mcs " << mcs << ", " << n << " indices: " << why;
        ASSERT_TRUE(back == idx) << "mcs " << mcs << ", " << n << " indices";
      }
  // Every stream length up to 3000 at the smallest code size crosses every width change point.
  for (size_t n = 1; n <= 3000; ++n) {
    std::vector<uint8_t> idx(n);
    for (size_t i = 0; i < n; ++i) idx[i] = uint8_t((i * i + 3 * i) % 4);
    std::vector<uint8_t> back;
    std::string why;
    ASSERT_TRUE(strict_lzw_decode(pvm::gif_lzw(idx, 2), 2, n, &back, &why)) << n << " indices: " << why;
    ASSERT_TRUE(back == idx) << n;
  }
}

TEST(Gif, FewColoursRoundTripExactlyThroughPillow) {
  REQUIRE_PILLOW();
  const int W = 301, H = 157;  // odd sizes; random pixels fill the LZW table many times over
  std::mt19937 rng(7);
  std::vector<std::array<uint8_t, 3>> colours(200);
  for (auto& c : colours) c = {uint8_t(rng()), uint8_t(rng()), uint8_t(rng())};
  std::vector<std::vector<uint8_t>> frames;
  std::vector<uint8_t> f(size_t(W) * H * 3);
  for (size_t i = 0; i < size_t(W) * H; ++i) {
    const auto& c = colours[rng() % colours.size()];
    std::copy(c.begin(), c.end(), &f[i * 3]);
  }
  frames.push_back(f);
  for (int y = 40; y < 90; ++y)  // a changed rectangle (the writer stores only that)
    for (int x = 100; x < 173; ++x) {
      const auto& c = colours[size_t(x / 9 + y / 5) % 17];
      std::copy(c.begin(), c.end(), &f[(size_t(y) * W + x) * 3]);
    }
  frames.push_back(f);
  frames.push_back(f);  // unchanged frame
  std::vector<uint8_t> two(size_t(W) * H * 3, 0);  // two colours: the smallest code size
  for (size_t i = 0; i < two.size(); i += 7) two[i] = 255;
  frames.push_back(two);

  const std::string path = tmp("few.gif");
  pvm::GifWriter g(path, W, H, 0);
  for (size_t i = 0; i < frames.size(); ++i) g.add_frame(frames[i].data(), int(3 + i));
  g.close();
  EXPECT_EQ(g.frames(), 4);
  Decoded d = decode_with_pillow(path);
  ASSERT_TRUE(d.error.empty()) << d.error;
  ASSERT_EQ(d.frames, 4);
  EXPECT_EQ(d.w, W);
  EXPECT_EQ(d.h, H);
  EXPECT_EQ(d.loop, 0);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(d.duration_ms[i], (3 + i) * 10) << "frame " << i;
    EXPECT_TRUE(d.rgb[i] == frames[i]) << "frame " << i << " differs from what was written";
  }
  fs::remove(path);
}

// Every code-stream length from 1 to 700 indices and palettes of 2 to 200 colours: the changed
// rectangle of frame k is k pixels wide, so each frame ends the LZW stream at another point of the
// code-width schedule.
TEST(Gif, LzwStreamsOfEveryLengthDecode) {
  REQUIRE_PILLOW();
  const int W = 700;
  const int palettes[] = {2, 3, 5, 37, 200};
  std::vector<std::vector<uint8_t>> frames;
  std::vector<uint8_t> f(size_t(W) * 3, 0);
  for (int k = 1; k <= W; ++k) {
    const int m = palettes[k % 5];
    for (int x = 0; x < k; ++x) {
      const int v = (x * 7 + k * 13 + (x * x) / 11) % m;
      f[size_t(x) * 3] = uint8_t(v), f[size_t(x) * 3 + 1] = uint8_t(255 - v), f[size_t(x) * 3 + 2] = uint8_t(k & 1);
    }
    frames.push_back(f);
  }
  const std::string path = tmp("lengths.gif");
  pvm::GifWriter g(path, W, 1);
  for (const auto& fr : frames) g.add_frame(fr.data(), 2);
  g.close();
  Decoded d = decode_with_pillow(path);
  ASSERT_TRUE(d.error.empty()) << d.error;
  ASSERT_EQ(d.frames, W);
  for (int i = 0; i < W; ++i) ASSERT_TRUE(d.rgb[size_t(i)] == frames[size_t(i)]) << "frame " << i;
  fs::remove(path);
}

TEST(Gif, ManyColoursComeBackClose) {
  REQUIRE_PILLOW();
  const int W = 256, H = 192;
  std::vector<uint8_t> f(size_t(W) * H * 3);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      uint8_t* p = &f[(size_t(y) * W + x) * 3];
      p[0] = uint8_t(x), p[1] = uint8_t(y * 255 / (H - 1)), p[2] = uint8_t((x * 3 + y * 5) & 255);
    }
  const pvm::GifPalette pal = pvm::gif_quantize(f.data(), size_t(W) * H, 256);
  EXPECT_EQ(pal.colours(), 256);
  const std::string path = tmp("many.gif");
  {
    pvm::GifWriter g(path, W, H, -1);  // play once: no loop extension
    g.add_frame(f.data(), 50);
    g.close();
  }
  Decoded d = decode_with_pillow(path);
  ASSERT_TRUE(d.error.empty()) << d.error;
  ASSERT_EQ(d.frames, 1);
  EXPECT_EQ(d.loop, -1);
  EXPECT_EQ(d.duration_ms[0], 500);
  double sum = 0;
  int worst = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    const int e = std::abs(int(d.rgb[0][i]) - int(f[i]));
    sum += e, worst = std::max(worst, e);
  }
  const double mean = sum / double(f.size());
  // 49k colours into 256: a 6x6x6-like share is ~20 levels per channel, so errors of a few levels.
  EXPECT_LT(mean, 8.0) << "mean abs error per channel";
  EXPECT_LT(worst, 64) << "worst channel error";
  fs::remove(path);
}

TEST(Gif, BadSizesAndPathsAreErrorsNamingTheFile) {
  std::vector<uint8_t> px(12, 0);
  try {
    pvm::GifWriter g(tmp("bad.gif"), 0, 5);
    FAIL() << "a 0x5 GIF was accepted";
  } catch (const pvm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.gif"), std::string::npos) << e.what();
  }
  const std::string missing = tmp("no_such_folder") + "/x.gif";
  try {
    pvm::GifWriter g(missing, 2, 2);
    FAIL() << "a GIF in a missing folder was accepted";
  } catch (const pvm::Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  const std::string empty = tmp("empty.gif");
  {
    pvm::GifWriter g(empty, 2, 2);
    EXPECT_THROW(g.close(), pvm::Error);  // no frames
  }
  EXPECT_FALSE(fs::exists(empty)) << "an unfinished GIF was left behind";
}
