// Shared fixtures of the trainer tests: a tiny model folder with a byte-level tokenizer, small
// preprocessing (64x64 images -> 4 merged tokens), coloured images and a learnable SFT task.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/image_write.h"
#include "engine/loader.h"
#include "engine/tensor_io.h"
#include "engine/train.h"
#include "tests/test_util.h"

namespace pvm::testing {

// GPT-2 byte -> unicode mapping for the byte-level vocabulary.
inline std::string train_byte_token(int b) {
  auto utf8 = [](uint32_t cp) {
    std::string s;
    if (cp < 0x80) s += char(cp);
    else if (cp < 0x800) s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
    else s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
    return s;
  };
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return utf8(uint32_t(b));
  int n = 0;
  for (int x = 0; x < b; ++x)
    if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
  return utf8(uint32_t(256 + n));
}

// Byte tokens 0..255 and the special tokens at tiny_config()'s ids.
inline void write_train_tokenizer(const std::string& path) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[train_byte_token(b)] = b;
  auto added = nlohmann::json::array();
  const std::vector<std::pair<int, std::string>> specials{{300, "<|image_pad|>"},  {301, "<|video_pad|>"},
                                                          {302, "<|vision_start|>"}, {303, "<|vision_end|>"},
                                                          {304, "<|endoftext|>"},  {305, "<|im_end|>"},
                                                          {306, "<|im_start|>"}};
  for (auto& [id, s] : specials)
    added.push_back({{"id", id}, {"content", s}, {"special", true}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"single_word", false}});
  nlohmann::json j = {{"version", "1.0"},
                      {"added_tokens", added},
                      {"normalizer", nullptr},
                      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                      {"decoder", {{"type", "ByteLevel"}}},
                      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  std::ofstream(path) << j.dump();
}

inline void write_solid_png(const std::string& path, uint8_t r, uint8_t g, uint8_t b, int w = 64, int h = 64) {
  ImageRGB img;
  img.width = w, img.height = h;
  img.rgb.resize((size_t)w * h * 3);
  for (size_t i = 0; i < img.rgb.size(); i += 3) img.rgb[i] = r, img.rgb[i + 1] = g, img.rgb[i + 2] = b;
  write_png(path, img);
}

struct TrainFixture {
  std::string dir, model, data;
};

// A tiny random model (optionally tied) + tokenizer + 64x64 preprocessing, coloured images, and
// `n` SFT lines "<image>What colour is it?" -> the colour name (learnable only from the image).
inline TrainFixture make_train_fixture(const std::string& name, int n = 16, uint64_t model_seed = 1) {
  TrainFixture f;
  f.dir = temp_dir(name);
  f.model = f.dir + "/model";
  std::filesystem::create_directories(f.model);
  auto m = make_random_model(tiny_config(), model_seed, torch::kFloat, torch::kCPU);
  save_model(m, f.model, torch::kFloat);
  write_train_tokenizer(f.model + "/tokenizer.json");
  std::ofstream(f.model + "/preprocessor_config.json")
      << R"({"size": {"shortest_edge": 4096, "longest_edge": 4096}, "patch_size": 16, "merge_size": 2, "temporal_patch_size": 2})";
  std::filesystem::create_directories(f.dir + "/img");
  const std::vector<std::pair<std::string, std::array<uint8_t, 3>>> colours{
      {"red", {220, 20, 20}}, {"green", {20, 200, 30}}, {"blue", {20, 30, 220}}, {"yellow", {230, 220, 20}}};
  for (auto& [c, rgb] : colours) write_solid_png(f.dir + "/img/" + c + ".png", rgb[0], rgb[1], rgb[2]);
  f.data = f.dir + "/train.jsonl";
  std::ofstream out(f.data);
  for (int i = 0; i < n; ++i) {
    auto& c = colours[(i * 7 + i / 4) % colours.size()].first;
    nlohmann::json line = {{"messages",
                            {{{"role", "user"}, {"content", "<image>What colour is it?"}},
                             {{"role", "assistant"}, {"content", c}}}},
                           {"images", {"img/" + c + ".png"}}};
    out << line.dump() << "\n";
  }
  return f;
}

// A config object for the fixture (overridable).
inline nlohmann::json train_config_json(const TrainFixture& f, const std::string& out) {
  return {{"model", f.model}, {"data", f.data},  {"out", out},     {"steps", 6},         {"batch_size", 4},
          {"lr", 3e-3},       {"warmup_steps", 0}, {"schedule", "constant"}, {"save_every", 0}, {"workers", 1},
          {"trainable", "all"}};
}

inline std::map<std::string, torch::Tensor> params_of(const std::string& file) { return load_tensors(file); }

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> v;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) v.push_back(nlohmann::json::parse(line));
  return v;
}

// `pvm train` on a config object without signal handlers; stop_after / resume as the CLI's
// --stop-after / --resume. Returns the exit code.
inline int run_train_quiet(const nlohmann::json& j, int64_t stop_after = -1, const std::string& resume = "") {
  auto c = train::parse_train_config(j, "test");
  train::RunOptions o;
  o.resume_dir = resume;
  o.install_signal_handlers = false;
  o.stop_after = stop_after;
  return train::run(c, o);
}

}  // namespace pvm::testing
