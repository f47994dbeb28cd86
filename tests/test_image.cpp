// Image loading and Qwen3-VL preprocessing (docs/MODEL.md#image-preprocessing).
#include <gtest/gtest.h>
#include <stb_image_write.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "engine/base/error.h"
#include "engine/image.h"
#include "engine/image_write.h"

#include "cli_util.h"

namespace {

std::string tmpdir() {
  static std::string dir = [] {
    std::string d = ::testing::TempDir() + "pvm_test_image_" + std::to_string(::getpid());
    ::mkdir(d.c_str(), 0755);
    return d;
  }();
  return dir;
}

std::string tmpfile(const std::string& name) { return tmpdir() + "/" + name; }

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

pvm::ImageRGB make_image(int w, int h, const std::function<std::array<uint8_t, 3>(int, int)>& fn) {
  pvm::ImageRGB img;
  img.width = w;
  img.height = h;
  img.rgb.resize(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      auto p = fn(y, x);
      for (int c = 0; c < 3; ++c) img.rgb[(size_t(y) * w + x) * 3 + c] = p[c];
    }
  return img;
}

// Runs a shell command, returns (exit status, stdout+stderr).
std::pair<int, std::string> run_cmd(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

using pvm::testing::pvm_bin;  // tests/cli_util.h

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const pvm::Error& e) {
    return e.what();
  }
  return "<no pvm::Error thrown>";
}

// --- tiny PNG builder (stored deflate blocks, so no zlib needed) for inputs stb_image_write cannot make
uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}
void put32be(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}
void png_chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& data) {
  put32be(png, uint32_t(data.size()));
  std::vector<uint8_t> td(type, type + 4);
  td.insert(td.end(), data.begin(), data.end());
  png.insert(png.end(), td.begin(), td.end());
  put32be(png, crc32(td.data(), td.size()));
}
// raw: filtered scanlines (each row starts with filter byte 0)
std::vector<uint8_t> make_png(int w, int h, int bit_depth, int color_type, const std::vector<uint8_t>& raw,
                              const std::vector<uint8_t>& exif = {}) {
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put32be(ihdr, w);
  put32be(ihdr, h);
  ihdr.insert(ihdr.end(), {uint8_t(bit_depth), uint8_t(color_type), 0, 0, 0});
  png_chunk(png, "IHDR", ihdr);
  if (!exif.empty()) png_chunk(png, "eXIf", exif);
  std::vector<uint8_t> z = {0x78, 0x01, 0x01};  // zlib header, final stored block
  uint16_t len = uint16_t(raw.size());
  z.insert(z.end(), {uint8_t(len & 0xFF), uint8_t(len >> 8), uint8_t(~len & 0xFF), uint8_t((~len >> 8) & 0xFF)});
  z.insert(z.end(), raw.begin(), raw.end());
  uint32_t a = 1, b = 0;
  for (uint8_t c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  put32be(z, (b << 16) | a);
  png_chunk(png, "IDAT", z);
  png_chunk(png, "IEND", {});
  return png;
}

// EXIF TIFF payload (little endian) with one IFD0 entry: Orientation (SHORT).
std::vector<uint8_t> exif_tiff(int orientation) {
  return {'I', 'I', 42, 0, 8, 0, 0, 0,  // header, IFD0 at 8
          1, 0,                         // 1 entry
          0x12, 0x01, 3, 0, 1, 0, 0, 0, uint8_t(orientation), 0, 0, 0,
          0, 0, 0, 0};                  // no next IFD
}

std::vector<uint8_t> encode(const char* kind, int w, int h, int comp, const uint8_t* px) {
  std::vector<uint8_t> out;
  auto fn = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  std::string k = kind;
  if (k == "png") stbi_write_png_to_func(fn, &out, w, h, comp, px, w * comp);
  if (k == "jpg") stbi_write_jpg_to_func(fn, &out, w, h, comp, px, 95);
  if (k == "bmp") stbi_write_bmp_to_func(fn, &out, w, h, comp, px);
  return out;
}

pvm::PreprocessorConfig no_resize_cfg() {
  pvm::PreprocessorConfig c;
  c.min_pixels = 32 * 32;  // so that small factor-32 images are kept as they are
  return c;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// smart_resize — expected values are the worked examples of docs/MODEL.md#image-preprocessing, not outputs of our code.
// ------------------------------------------------------------------------------------------------

TEST(SmartResize, SpecWorkedExamples) {
  struct Case { int64_t h, w, eh, ew, tokens; };
  const Case cases[] = {{480, 640, 480, 640, 300},
                        {1080, 1920, 1088, 1920, 2040},
                        {100, 100, 256, 256, 64},
                        {496, 528, 512, 512, 256},
                        {4000, 6000, 3328, 4992, 16224}};
  for (const auto& c : cases) {
    auto [h, w] = pvm::smart_resize(c.h, c.w, 32, 65536, 16777216);
    EXPECT_EQ(h, c.eh) << c.h << "x" << c.w;
    EXPECT_EQ(w, c.ew) << c.h << "x" << c.w;
    EXPECT_EQ((h / 32) * (w / 32), c.tokens) << c.h << "x" << c.w;
  }
}

TEST(SmartResize, PythonRoundHalfToEven) {
  EXPECT_EQ(pvm::round_half_even(0.5), 0.0);
  EXPECT_EQ(pvm::round_half_even(1.5), 2.0);
  EXPECT_EQ(pvm::round_half_even(2.5), 2.0);
  EXPECT_EQ(pvm::round_half_even(15.5), 16.0);
  EXPECT_EQ(pvm::round_half_even(16.5), 16.0);
  EXPECT_EQ(pvm::round_half_even(16.5000001), 17.0);
  EXPECT_EQ(pvm::round_half_even(2.4999999), 2.0);
  EXPECT_EQ(pvm::round_half_even(-1.5), -2.0);
  // 16.5*32 = 528 rounds down to 512, 17.5*32 = 560 rounds up to 576 (even 18)
  auto hw = pvm::smart_resize(528, 560, 32, 1, 1 << 30);
  EXPECT_EQ(hw.first, 512);
  EXPECT_EQ(hw.second, 576);
  // Qwen2-VL factor 28 and the floor branch keep at least one factor
  EXPECT_EQ(pvm::smart_resize(10, 2000, 28, 3136, 3136).first, 28);
}

TEST(SmartResize, ZeroPixelsAndAspectRatioAreErrors) {
  EXPECT_THROW(pvm::smart_resize(0, 10, 32, 65536, 16777216), pvm::Error);
  EXPECT_THROW(pvm::smart_resize(10, 0, 32, 65536, 16777216), pvm::Error);
  EXPECT_NO_THROW(pvm::smart_resize(1, 200, 32, 65536, 16777216));  // exactly 200 is allowed
  std::string msg = error_of([] { pvm::smart_resize(1, 201, 32, 65536, 16777216); });
  EXPECT_NE(msg.find("200"), std::string::npos) << msg;
  EXPECT_THROW(pvm::smart_resize(1000, 4, 32, 65536, 16777216), pvm::Error);

  // preprocess reports them with the image's name
  auto thin = make_image(201, 1, [](int, int) { return std::array<uint8_t, 3>{1, 2, 3}; });
  thin.source = "thin_strip.png";
  msg = error_of([&] { pvm::preprocess(thin, pvm::PreprocessorConfig{}); });
  EXPECT_EQ(msg.rfind("thin_strip.png: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("200"), std::string::npos) << msg;

  pvm::ImageRGB empty;
  empty.source = "empty.png";
  msg = error_of([&] { pvm::preprocess(empty, pvm::PreprocessorConfig{}); });
  EXPECT_NE(msg.find("empty.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0 pixels"), std::string::npos) << msg;
}

// ------------------------------------------------------------------------------------------------
// Pixel values layout (docs/MODEL.md#image-preprocessing step 6), frame duplication, normalization
// ------------------------------------------------------------------------------------------------

TEST(Preprocess, FlatteningOrderMatchesSpecFormula) {
  // 64 x 96 is already a multiple of 32: no resize, so pixel_values must be exactly the normalized
  // pixels in the documented order. Each pixel encodes its coordinates.
  const int H = 64, W = 96;
  auto px = [](int y, int x) {
    return std::array<uint8_t, 3>{uint8_t(y), uint8_t(x), uint8_t((y * 7 + x * 3) % 256)};
  };
  auto img = make_image(W, H, px);
  auto cfg = no_resize_cfg();
  auto p = pvm::preprocess(img, cfg);
  ASSERT_EQ(p.resized_h, H);
  ASSERT_EQ(p.resized_w, W);
  ASSERT_EQ(p.grid_t, 1);
  ASSERT_EQ(p.grid_h, 4);
  ASSERT_EQ(p.grid_w, 6);
  EXPECT_EQ(p.num_tokens(), 6);
  ASSERT_EQ(p.pixel_values.sizes(), (std::vector<int64_t>{24, 1536}));
  ASSERT_EQ(p.pixel_values.scalar_type(), torch::kFloat32);
  auto a = p.pixel_values.accessor<float, 2>();

  const int gh = 4, gw = 6, gt_i = 0;
  int checked = 0;
  for (int br = 0; br < gh / 2; ++br)
    for (int bc = 0; bc < gw / 2; ++bc)
      for (int ir = 0; ir < 2; ++ir)
        for (int ic = 0; ic < 2; ++ic)
          for (int c = 0; c < 3; ++c)
            for (int tt = 0; tt < 2; ++tt)
              for (int py = 0; py < 16; ++py)
                for (int pxx = 0; pxx < 16; ++pxx) {
                  int r = ((gt_i * (gh / 2) + br) * (gw / 2) + bc) * 4 + ir * 2 + ic;
                  int col = ((c * 2 + tt) * 16 + py) * 16 + pxx;
                  int y = (2 * br + ir) * 16 + py, x = (2 * bc + ic) * 16 + pxx;
                  float expect = (static_cast<float>(px(y, x)[c]) - 127.5f) / 127.5f;
                  ASSERT_EQ(a[r][col], expect) << "row " << r << " col " << col;
                  ++checked;
                }
  EXPECT_EQ(checked, 24 * 1536);

  // inverse mapping gives the normalized image back
  auto f0 = pvm::unpatchify(p.pixel_values, 1, 4, 6, cfg, 0);
  auto f1 = pvm::unpatchify(p.pixel_values, 1, 4, 6, cfg, 1);
  auto ref = (pvm::image_to_tensor(img).to(torch::kFloat32) - 127.5f) / 127.5f;
  EXPECT_TRUE(torch::equal(f0, ref));
  EXPECT_TRUE(torch::equal(f1, ref));
}

TEST(Preprocess, SingleFrameIsDuplicatedToTemporalPatch) {
  std::mt19937 rng(7);
  auto img = make_image(64, 32, [&](int, int) {
    return std::array<uint8_t, 3>{uint8_t(rng()), uint8_t(rng()), uint8_t(rng())};
  });
  auto p = pvm::preprocess(img, no_resize_cfg());
  auto v = p.pixel_values.view({p.pixel_values.size(0), 3, 2, 16 * 16});
  EXPECT_TRUE(torch::equal(v.select(2, 0), v.select(2, 1)));
  EXPECT_GT(v.select(2, 0).std().item<float>(), 0.1f);  // not trivially equal (random content)

  // temporal_patch_size 1: no duplication, 768-wide rows; 3: three copies
  auto cfg1 = no_resize_cfg();
  cfg1.temporal_patch_size = 1;
  auto p1 = pvm::preprocess(img, cfg1);
  EXPECT_EQ(p1.pixel_values.size(1), 3 * 16 * 16);
  EXPECT_TRUE(torch::equal(p1.pixel_values.view({-1, 3, 256}), v.select(2, 0)));
  auto cfg3 = no_resize_cfg();
  cfg3.temporal_patch_size = 3;
  auto v3 = pvm::preprocess(img, cfg3).pixel_values.view({-1, 3, 3, 256});
  EXPECT_TRUE(torch::equal(v3.select(2, 2), v.select(2, 0)));
}

TEST(Preprocess, NormalizationIsExactFp32) {
  // every byte value appears: 256 columns x 32 rows, value = column
  auto img = make_image(256, 32, [](int, int x) { return std::array<uint8_t, 3>{uint8_t(x), uint8_t(255 - x), 128}; });
  auto cfg = no_resize_cfg();
  auto f = pvm::normalize_image(pvm::image_to_tensor(img), cfg);
  auto a = f.accessor<float, 3>();
  for (int v = 0; v < 256; ++v) {
    float e = (static_cast<float>(v) - 127.5f) / 127.5f;
    ASSERT_EQ(a[0][0][v], e) << v;
    ASSERT_EQ(a[1][3][255 - v], e) << v;
  }
  EXPECT_EQ(a[0][0][0], -1.0f);
  EXPECT_EQ(a[0][0][255], 1.0f);
  EXPECT_EQ(a[2][0][0], 0.5f / 127.5f);

  // per-channel mean/std (Qwen2-VL / CLIP values): fused as f32(mean)*f32(1/rescale), then sub, div
  pvm::PreprocessorConfig clip = cfg;
  clip.mean = {0.48145466f, 0.4578275f, 0.40821073f};
  clip.std = {0.26862954f, 0.26130258f, 0.27577711f};
  auto gt = pvm::normalize_image(pvm::image_to_tensor(img), clip);
  auto g = gt.accessor<float, 3>();
  const float inv = static_cast<float>(1.0 / (1 / 255.0));
  for (int c = 0; c < 3; ++c)
    for (int x = 0; x < 256; x += 17) {
      float v = static_cast<float>(img.at(0, x, c));
      float e = (v - clip.mean[c] * inv) / (clip.std[c] * inv);
      ASSERT_EQ(g[c][0][x], e) << c << " " << x;
    }
  // do_normalize=false: rescale only
  pvm::PreprocessorConfig rs = cfg;
  rs.do_normalize = false;
  auto rt = pvm::normalize_image(pvm::image_to_tensor(img), rs);
  auto r = rt.accessor<float, 3>();
  EXPECT_EQ(r[0][0][255], 255.0f * static_cast<float>(1 / 255.0));
}

TEST(Preprocess, EndToEndShapesAndBatch) {
  auto small = make_image(100, 100, [](int y, int x) { return std::array<uint8_t, 3>{uint8_t(x), uint8_t(y), 9}; });
  auto wide = make_image(640, 480, [](int y, int x) { return std::array<uint8_t, 3>{uint8_t(x ^ y), 3, 200}; });
  pvm::PreprocessorConfig cfg;
  auto a = pvm::preprocess(small, cfg);
  EXPECT_EQ(a.resized_h, 256);
  EXPECT_EQ(a.resized_w, 256);
  EXPECT_EQ(a.grid_h, 16);
  EXPECT_EQ(a.grid_w, 16);
  EXPECT_EQ(a.num_tokens(), 64);
  EXPECT_EQ(a.pixel_values.sizes(), (std::vector<int64_t>{256, 1536}));
  EXPECT_LE(a.pixel_values.max().item<float>(), 1.0f);
  EXPECT_GE(a.pixel_values.min().item<float>(), -1.0f);
  auto b = pvm::preprocess(wide, cfg);
  EXPECT_EQ(b.num_tokens(), 300);

  auto batch = pvm::concat_images({a, b});
  EXPECT_EQ(batch.pixel_values.sizes(), (std::vector<int64_t>{256 + 1200, 1536}));
  EXPECT_EQ(batch.grid_thw.scalar_type(), torch::kInt64);
  ASSERT_EQ(batch.grid_thw.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(torch::equal(batch.grid_thw, torch::tensor({1, 16, 16, 1, 30, 40}, torch::kInt64).view({2, 3})));
  EXPECT_TRUE(torch::equal(batch.pixel_values.slice(0, 256), b.pixel_values));
  EXPECT_EQ(batch.total_tokens(), 364);
  auto batch2 = pvm::preprocess_images({small, wide}, cfg);
  EXPECT_TRUE(torch::equal(batch2.pixel_values, batch.pixel_values));
}

// ------------------------------------------------------------------------------------------------
// Antialiased bicubic uint8 resize
// ------------------------------------------------------------------------------------------------

TEST(Resize, ConstantImageStaysConstant) {
  for (auto [ih, iw, oh, ow] : std::vector<std::array<int64_t, 4>>{
           {50, 70, 32, 32}, {50, 70, 100, 160}, {33, 1000, 64, 96}, {7, 9, 256, 288}, {300, 20, 96, 64}}) {
    auto img = torch::empty({3, ih, iw}, torch::kUInt8);
    img[0].fill_(13);
    img[1].fill_(200);
    img[2].fill_(255);
    for (auto out : {pvm::resize_bicubic_aa_u8(img, oh, ow), pvm::resize_bicubic_aa_u8(img.unsqueeze(0), oh, ow)[0]}) {
      ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, oh, ow}));
      EXPECT_EQ(out[0].min().item<int>(), 13);
      EXPECT_EQ(out[0].max().item<int>(), 13);
      EXPECT_EQ(out[1].min().item<int>(), 200);
      EXPECT_EQ(out[1].max().item<int>(), 200);
      EXPECT_EQ(out[2].min().item<int>(), 255);
    }
  }
}

TEST(Resize, DownscalingACheckerboardAveragesIt) {
  auto img = torch::empty({3, 128, 128}, torch::kUInt8);
  auto acc = img.accessor<uint8_t, 3>();
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 128; ++y)
      for (int x = 0; x < 128; ++x) acc[c][y][x] = ((x + y) % 2) ? 255 : 0;
  auto out = pvm::resize_bicubic_aa_u8(img, 32, 32).to(torch::kInt32);
  // antialiasing averages the 1-pixel pattern to mid gray; plain bicubic would alias to 0/255
  EXPECT_GE(out.min().item<int>(), 125);
  EXPECT_LE(out.max().item<int>(), 130);
}

TEST(Resize, SameSizeIsUnchanged) {
  auto img = torch::randint(0, 256, {3, 32, 64}, torch::kUInt8);
  EXPECT_TRUE(torch::equal(pvm::resize_bicubic_aa_u8(img, 32, 64), img));
}

// The uint8 path must agree with LibTorch's float antialiased bicubic (same filter) up to the uint8
// rounding of the intermediate and final results, on images without bicubic overshoot clipping.
TEST(Resize, AgreesWithFloatKernel) {
  torch::manual_seed(3);
  for (auto [ih, iw, oh, ow] : std::vector<std::array<int64_t, 4>>{
           {61, 83, 32, 64}, {61, 83, 128, 160}, {200, 150, 64, 96}, {40, 40, 96, 32}, {97, 301, 96, 288}}) {
    // smooth content: low-resolution noise upsampled bilinearly, range 40..215
    auto low = torch::rand({1, 3, 6, 7}) * 175 + 40;
    std::vector<int64_t> isz{ih, iw};
    auto smooth = at::upsample_bilinear2d(low, at::IntArrayRef(isz), false).round().to(torch::kUInt8)[0];
    auto mine = pvm::resize_bicubic_aa_u8(smooth, oh, ow).to(torch::kInt32);
    std::vector<int64_t> sz{oh, ow};
    auto ref = at::_upsample_bicubic2d_aa(smooth.unsqueeze(0).to(torch::kFloat32), at::IntArrayRef(sz), false)[0]
                   .clamp(0, 255)
                   .round()
                   .to(torch::kInt32);
    auto diff = (mine - ref).abs();
    EXPECT_LE(diff.max().item<int>(), 1) << ih << "x" << iw << " -> " << oh << "x" << ow;
    EXPECT_LT(diff.to(torch::kFloat32).mean().item<float>(), 0.2f);
  }
}

// ------------------------------------------------------------------------------------------------
// Loading
// ------------------------------------------------------------------------------------------------

TEST(LoadImage, PngBmpAreExactAndJpegIsClose) {
  const int W = 24, H = 16;
  std::vector<uint8_t> rgb(W * H * 3);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      uint8_t* p = &rgb[(y * W + x) * 3];
      p[0] = uint8_t(x * 10);
      p[1] = uint8_t(y * 15);
      p[2] = uint8_t(255 - x * 3 - y);
    }
  for (const char* kind : {"png", "bmp"}) {
    std::string path = tmpfile(std::string("rgb.") + kind);
    write_bytes(path, encode(kind, W, H, 3, rgb.data()));
    auto img = pvm::load_image(path);
    EXPECT_EQ(img.width, W) << kind;
    EXPECT_EQ(img.height, H) << kind;
    EXPECT_EQ(img.rgb, rgb) << kind;
    EXPECT_EQ(img.source, path);
  }
  // JPEG is lossy: flat 8x8-aligned blocks decode close to their colour
  std::vector<uint8_t> blocks(32 * 16 * 3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 32; ++x) {
      uint8_t* p = &blocks[(y * 32 + x) * 3];
      bool left = x < 16;
      p[0] = left ? 200 : 20;
      p[1] = left ? 30 : 180;
      p[2] = left ? 40 : 60;
    }
  std::string jpg = tmpfile("blocks.jpg");
  write_bytes(jpg, encode("jpg", 32, 16, 3, blocks.data()));
  auto img = pvm::load_image(jpg);
  ASSERT_EQ(img.width, 32);
  ASSERT_EQ(img.height, 16);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(img.at(4, 4, c), blocks[(4 * 32 + 4) * 3 + c], 6);
    EXPECT_NEAR(img.at(12, 28, c), blocks[(12 * 32 + 28) * 3 + c], 6);
  }
}

TEST(LoadImage, AlphaIsDroppedAndGrayIsExpanded) {
  // RGBA: colour kept even under alpha 0 (PIL convert("RGB") drops alpha, no compositing)
  std::vector<uint8_t> rgba = {10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255, 1, 2, 3, 7};
  std::string p = tmpfile("rgba.png");
  write_bytes(p, encode("png", 2, 2, 4, rgba.data()));
  auto img = pvm::load_image(p);
  EXPECT_EQ(img.rgb, (std::vector<uint8_t>{10, 20, 30, 40, 50, 60, 70, 80, 90, 1, 2, 3}));

  std::vector<uint8_t> gray = {0, 77, 200, 255};
  p = tmpfile("gray.png");
  write_bytes(p, encode("png", 4, 1, 1, gray.data()));
  img = pvm::load_image(p);
  EXPECT_EQ(img.rgb, (std::vector<uint8_t>{0, 0, 0, 77, 77, 77, 200, 200, 200, 255, 255, 255}));

  std::vector<uint8_t> ga = {5, 0, 250, 255};
  p = tmpfile("gray_alpha.png");
  write_bytes(p, encode("png", 2, 1, 2, ga.data()));
  img = pvm::load_image(p);
  EXPECT_EQ(img.rgb, (std::vector<uint8_t>{5, 5, 5, 250, 250, 250}));

  // 16-bit grayscale: PIL's "I;16" -> RGB clips at 255 (it does not scale)
  std::vector<uint8_t> raw = {0, 0x00, 0x10, 0x00, 0xFF, 0x01, 0x00, 0xFF, 0xFF};
  p = tmpfile("gray16.png");
  write_bytes(p, make_png(4, 1, 16, 0, raw));
  img = pvm::load_image(p);
  EXPECT_EQ(img.rgb, (std::vector<uint8_t>{16, 16, 16, 255, 255, 255, 255, 255, 255, 255, 255, 255}));
  // 16-bit RGB keeps the high byte (PIL "RGB;16B")
  std::vector<uint8_t> raw_rgb = {0, 0x12, 0x34, 0xAB, 0xCD, 0x00, 0xFF};
  p = tmpfile("rgb16.png");
  write_bytes(p, make_png(1, 1, 16, 2, raw_rgb));
  img = pvm::load_image(p);
  EXPECT_EQ(img.rgb, (std::vector<uint8_t>{0x12, 0xAB, 0x00}));
}

TEST(LoadImage, GifFirstFrame) {
  // 2x2 GIF89a, 4-colour global palette, two frames. LZW with min code size 2: a clear code (4)
  // before every pixel keeps the code width at 3 bits; 5 ends the stream.
  auto lzw = [](const std::vector<int>& idx) {
    std::vector<int> codes;
    for (int i : idx) {
      codes.push_back(4);
      codes.push_back(i);
    }
    codes.push_back(5);
    std::vector<uint8_t> bytes;
    uint32_t acc = 0;
    int nbits = 0;
    for (int c : codes) {
      acc |= uint32_t(c) << nbits;
      nbits += 3;
      while (nbits >= 8) {
        bytes.push_back(uint8_t(acc & 0xFF));
        acc >>= 8;
        nbits -= 8;
      }
    }
    if (nbits > 0) bytes.push_back(uint8_t(acc & 0xFF));
    std::vector<uint8_t> out = {2, uint8_t(bytes.size())};  // min code size, one sub-block
    out.insert(out.end(), bytes.begin(), bytes.end());
    out.push_back(0);
    return out;
  };
  std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 2, 0, 2, 0, 0x81, 0, 0,
                              255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255};
  for (auto frame : {std::vector<int>{0, 1, 2, 3}, std::vector<int>{3, 3, 3, 3}}) {
    std::vector<uint8_t> desc = {0x2C, 0, 0, 0, 0, 2, 0, 2, 0, 0};
    gif.insert(gif.end(), desc.begin(), desc.end());
    auto data = lzw(frame);
    gif.insert(gif.end(), data.begin(), data.end());
  }
  gif.push_back(0x3B);
  std::string p = tmpfile("two_frames.gif");
  write_bytes(p, gif);
  auto img = pvm::load_image(p);
  ASSERT_EQ(img.width, 2);
  ASSERT_EQ(img.height, 2);
  EXPECT_EQ(img.rgb, (std::vector<uint8_t>{255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255}));
  // in-memory decoding gives the same
  auto mem = pvm::decode_image(gif.data(), gif.size(), "mem.gif");
  EXPECT_EQ(mem.rgb, img.rgb);
  EXPECT_EQ(mem.source, "mem.gif");
}

TEST(LoadImage, ExifOrientationLikePilExifTranspose) {
  // 3x2 image, pixels a..f encoded in red:  a b c / d e f
  std::vector<uint8_t> raw;
  for (int y = 0; y < 2; ++y) {
    raw.push_back(0);  // filter
    for (int x = 0; x < 3; ++x) raw.insert(raw.end(), {uint8_t('a' + y * 3 + x), 0, 0});
  }
  auto reds = [](const pvm::ImageRGB& im) {
    std::string s;
    for (int y = 0; y < im.height; ++y) {
      for (int x = 0; x < im.width; ++x) s += char(im.at(y, x, 0));
      s += '/';
    }
    return s;
  };
  const std::map<int, std::string> expect = {{1, "abc/def/"}, {2, "cba/fed/"},    {3, "fed/cba/"},
                                             {4, "def/abc/"}, {5, "ad/be/cf/"},   {6, "da/eb/fc/"},
                                             {7, "fc/eb/da/"}, {8, "cf/be/ad/"}};
  for (auto& [o, e] : expect) {
    auto png = make_png(3, 2, 8, 2, raw, exif_tiff(o));
    auto img = pvm::decode_image(png.data(), png.size(), "o" + std::to_string(o) + ".png");
    EXPECT_EQ(reds(img), e) << "orientation " << o;
    auto plain = pvm::decode_image(png.data(), png.size(), "plain.png", /*exif_orientation=*/false);
    EXPECT_EQ(reds(plain), "abc/def/");
  }
  // JPEG APP1 Exif (orientation 6 = rotate 90 clockwise): left half red -> top half red
  std::vector<uint8_t> blocks(32 * 16 * 3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 32; ++x) blocks[(y * 32 + x) * 3] = x < 16 ? 230 : 10;
  auto jpg = encode("jpg", 32, 16, 3, blocks.data());
  auto tiff = exif_tiff(6);
  std::vector<uint8_t> app1 = {0xFF, 0xE1, 0, uint8_t(2 + 6 + tiff.size()), 'E', 'x', 'i', 'f', 0, 0};
  app1.insert(app1.end(), tiff.begin(), tiff.end());
  jpg.insert(jpg.begin() + 2, app1.begin(), app1.end());
  std::string p = tmpfile("rot6.jpg");
  write_bytes(p, jpg);
  auto img = pvm::load_image(p);
  ASSERT_EQ(img.width, 16);
  ASSERT_EQ(img.height, 32);
  EXPECT_GT(img.at(4, 8, 0), 200);
  EXPECT_LT(img.at(28, 8, 0), 40);
}

TEST(LoadImage, BadFilesAreErrorsNamingTheFile) {
  std::string missing = tmpfile("does_not_exist.png");
  std::string msg = error_of([&] { pvm::load_image(missing); });
  EXPECT_EQ(msg.rfind(missing + ": ", 0), 0u) << msg;

  std::string txt = tmpfile("notes.txt");
  { std::ofstream(txt) << "hello, this is not an image\n"; }
  msg = error_of([&] { pvm::load_image(txt); });
  EXPECT_EQ(msg, txt + ": not an image (unknown format)");

  std::vector<uint8_t> rgb(40 * 30 * 3, 99);
  auto png = encode("png", 40, 30, 3, rgb.data());
  std::string trunc = tmpfile("truncated.png");
  write_bytes(trunc, std::vector<uint8_t>(png.begin(), png.begin() + png.size() / 2));
  msg = error_of([&] { pvm::load_image(trunc); });
  EXPECT_EQ(msg.rfind(trunc + ": ", 0), 0u) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  std::string header_only = tmpfile("header_only.png");
  write_bytes(header_only, std::vector<uint8_t>(png.begin(), png.begin() + 8));
  msg = error_of([&] { pvm::load_image(header_only); });
  EXPECT_EQ(msg.rfind(header_only + ": ", 0), 0u) << msg;

  std::string empty = tmpfile("empty.jpg");
  write_bytes(empty, {});
  msg = error_of([&] { pvm::load_image(empty); });
  EXPECT_EQ(msg.rfind(empty + ": ", 0), 0u) << msg;

  // PNG that declares 0 x 5 pixels
  auto zero = make_png(0, 5, 8, 2, {0});
  msg = error_of([&] { pvm::decode_image(zero.data(), zero.size(), "zero.png"); });
  EXPECT_EQ(msg, "zero.png: image has 0 pixels");

  std::vector<uint8_t> webp = {'R', 'I', 'F', 'F', 10, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', ' '};
  msg = error_of([&] { pvm::decode_image(webp.data(), webp.size(), "pic.webp"); });
  EXPECT_NE(msg.find("pic.webp: WebP"), std::string::npos) << msg;
}

TEST(LoadImage, WriteImageRoundTrip) {
  auto img = make_image(5, 3, [](int y, int x) { return std::array<uint8_t, 3>{uint8_t(x * 50), uint8_t(y * 90), 7}; });
  std::string p = tmpfile("roundtrip.png");
  pvm::write_image(p, img);
  EXPECT_EQ(pvm::load_image(p).rgb, img.rgb);
  auto bytes = pvm::encode_png(img.width, img.height, 3, img.rgb.data());
  EXPECT_EQ(pvm::decode_image(bytes.data(), bytes.size(), "mem").rgb, img.rgb);
  EXPECT_THROW(pvm::write_image(tmpfile("x.tiff"), img), pvm::Error);
}

// ------------------------------------------------------------------------------------------------
// preprocessor_config.json
// ------------------------------------------------------------------------------------------------

TEST(PreprocessorConfig, LoadsModernLegacyAndRejectsBadValues) {
  auto write = [](const std::string& name, const std::string& text) {
    std::string p = tmpfile(name);
    std::ofstream(p) << text;
    return p;
  };
  auto c = pvm::PreprocessorConfig::load(write("qwen3.json", R"({"size": {"longest_edge": 16777216, "shortest_edge": 65536},
    "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5,0.5,0.5],
    "image_std": [0.5,0.5,0.5], "processor_class": "Qwen3VLProcessor",
    "image_processor_type": "Qwen2VLImageProcessorFast"})"));
  EXPECT_EQ(c.min_pixels, 65536);
  EXPECT_EQ(c.max_pixels, 16777216);
  EXPECT_EQ(c.factor(), 32);
  EXPECT_EQ(c.mean[1], 0.5f);

  auto q2 = pvm::PreprocessorConfig::load(write("qwen2.json", R"({"min_pixels": 3136, "max_pixels": 12845056,
    "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 1, "longest_edge": 2}})"));
  EXPECT_EQ(q2.min_pixels, 3136);  // legacy top-level keys override size
  EXPECT_EQ(q2.max_pixels, 12845056);
  EXPECT_EQ(q2.patch_size, 14);
  EXPECT_EQ(q2.factor(), 28);
  EXPECT_FLOAT_EQ(q2.std[2], 0.27577711f);

  auto legacy_size = pvm::PreprocessorConfig::load(write("legacy_size.json", R"({"size": {"min_pixels": 100, "max_pixels": 1000}})"));
  EXPECT_EQ(legacy_size.min_pixels, 100);
  EXPECT_EQ(legacy_size.max_pixels, 1000);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"bad_patch.json", R"({"patch_size": 0})"},
      {"bad_mean.json", R"({"image_mean": [0.5, 0.5]})"},
      {"bad_std.json", R"({"image_std": [0.5, 0, 0.5]})"},
      {"bad_size.json", R"({"size": {"height": 224, "width": 224}})"},
      {"bad_minmax.json", R"({"min_pixels": 5000, "max_pixels": 10})"},
      {"bad_type.json", R"({"merge_size": "two"})"},
      {"bad_resample.json", R"({"resample": 2})"},
      {"bad_json.json", R"({"patch_size": 16,)"},
      // issue 21: sizes bounded (no absurd image, no overflow in factor / patch arithmetic)
      {"huge_patch.json", R"({"patch_size": 4611686018427387904})"},
      {"huge_merge.json", R"({"merge_size": 100000})"},
      {"huge_min.json", R"({"min_pixels": 1000000000000, "max_pixels": 1000000000000})"},
      {"huge_max.json", R"({"size": {"shortest_edge": 65536, "longest_edge": 1000000000000}})"},
      {"float_patch.json", R"({"patch_size": 16.5})"},
  };
  for (auto& [name, text] : bad) {
    std::string p = write(name, text);
    std::string msg = error_of([&] { pvm::PreprocessorConfig::load(p); });
    EXPECT_EQ(msg.rfind(p + ": ", 0), 0u) << name << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  std::string fifo = tmpfile("fifo.json");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(error_of([&] { pvm::PreprocessorConfig::load(fifo); }).find("not a regular file"), std::string::npos);
  ::unlink(fifo.c_str());
  std::string missing = tmpfile("nope.json");
  EXPECT_EQ(error_of([&] { pvm::PreprocessorConfig::load(missing); }).rfind(missing + ": ", 0), 0u);
}

// ------------------------------------------------------------------------------------------------
// CLI
// ------------------------------------------------------------------------------------------------

TEST(PreprocessCli, JsonOutput) {
  std::string bin = pvm_bin();
  if (bin.empty()) GTEST_SKIP() << "pvm binary not found (set PVM_BIN)";
  auto img = make_image(1920, 1080, [](int y, int x) { return std::array<uint8_t, 3>{uint8_t(x), uint8_t(y), 77}; });
  std::string p = tmpfile("cli_1920x1080.png");
  pvm::write_image(p, img);
  auto [rc, out] = run_cmd(bin + " preprocess --image " + p + " --json");
  ASSERT_EQ(rc, 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["width"], 1920);
  EXPECT_EQ(j["height"], 1080);
  EXPECT_EQ(j["resized_width"], 1920);
  EXPECT_EQ(j["resized_height"], 1088);
  EXPECT_EQ(j["grid_thw"], nlohmann::json::array({1, 68, 120}));
  EXPECT_EQ(j["num_image_tokens"], 2040);
  EXPECT_EQ(j["pixel_values_shape"], nlohmann::json::array({8160, 1536}));

  // pixel budget options and a config file
  std::string cfg = tmpfile("cli_cfg.json");
  std::ofstream(cfg) << R"({"size": {"shortest_edge": 65536, "longest_edge": 16777216}, "patch_size": 16})";
  std::tie(rc, out) = run_cmd(bin + " preprocess --image " + p + " --config " + cfg +
                              " --max-pixels 262144 --json");
  ASSERT_EQ(rc, 0) << out;
  j = nlohmann::json::parse(out);
  EXPECT_LE(j["resized_width"].get<int>() * j["resized_height"].get<int>(), 262144);
  EXPECT_EQ(j["num_image_tokens"].get<int>(),
            j["resized_width"].get<int>() / 32 * (j["resized_height"].get<int>() / 32));

  // --config may name a model directory; Qwen2-VL sizes (patch 14, factor 28): 1080 / 28 = 38.6 -> 39,
  // 1920 / 28 = 68.6 -> 69
  std::string model_dir = tmpfile("cli_model");
  ::mkdir(model_dir.c_str(), 0755);
  std::ofstream(model_dir + "/preprocessor_config.json")
      << R"({"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2})";
  std::tie(rc, out) = run_cmd(bin + " preprocess --image " + p + " --config " + model_dir + " --json");
  ASSERT_EQ(rc, 0) << out;
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["resized_height"], 39 * 28);
  EXPECT_EQ(j["resized_width"], 69 * 28);
  EXPECT_EQ(j["grid_thw"], nlohmann::json::array({1, 78, 138}));
  EXPECT_EQ(j["num_image_tokens"], 39 * 69);
  EXPECT_EQ(j["pixel_values_shape"], nlohmann::json::array({78 * 138, 3 * 2 * 14 * 14}));

  // text output and an error naming the file
  std::tie(rc, out) = run_cmd(bin + " preprocess --image " + p);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("image tokens:    2040"), std::string::npos) << out;
  std::string txt = tmpfile("cli_not_image.txt");
  std::ofstream(txt) << "plain text";
  std::tie(rc, out) = run_cmd(bin + " preprocess --image " + txt + " --json");
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find(txt + ": not an image (unknown format)"), std::string::npos) << out;
}
