// Fixtures shared by the studio tests that drive a Session on the in-memory random model.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "app/studio/session.h"

namespace pvm::studio::testing {

// A 64x48 image with gradients and a checkerboard (scaled up to the processor's minimum).
inline ImageData test_image() {
  ImageData im;
  im.width = 64, im.height = 48;
  im.rgb.resize(size_t(im.width) * im.height * 3);
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x) {
      uint8_t* p = &im.rgb[(size_t(y) * im.width + x) * 3];
      p[0] = uint8_t(x * 4), p[1] = uint8_t(y * 5), p[2] = (x / 8 + y / 8) % 2 ? 200 : 30;
    }
  im.source = "test";
  return im;
}

// n tokens, sampled (temperature 0.8, seed 7): the seed must be honoured on every side.
inline GenerateSettings settings(int n) {
  GenerateSettings s;
  s.prompt = "Describe the image.";
  s.image = test_image();
  s.max_new_tokens = n;
  s.sampling.temperature = 0.8f;
  s.sampling.seed = 7;
  return s;
}

inline LoadRequest dir_request(const std::string& dir) {
  LoadRequest r;
  r.dir = dir;
  return r;
}
inline LoadRequest random_request() { return dir_request(kRandomModel); }

inline UiState synced(Session& s) {
  UiState ui;
  s.sync(ui);
  return ui;
}

inline std::vector<int64_t> ids(const SideData& d) {
  std::vector<int64_t> v;
  for (auto& t : d.tokens) v.push_back(t.id);
  return v;
}

}  // namespace pvm::studio::testing
