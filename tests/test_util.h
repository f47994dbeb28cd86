// Shared helpers for the torch tests: a tiny Qwen3-VL config and temp dirs.
#pragma once
#include <filesystem>
#include <random>
#include <string>

#include "engine/base/config.h"
#include "engine/pvm.h"
#include "engine/torch_pch.h"

namespace pvm::testing {

// Small enough for many forwards per test, but with every feature: GQA (4 q / 2 kv heads),
// interleaved MRoPE, 3 vision blocks with 2 DeepStack taps, untied lm_head.
inline ModelConfig tiny_config(bool tie = false) {
  ModelConfig c;
  auto& t = c.text;
  t.vocab_size = 320, t.hidden_size = 64, t.intermediate_size = 96, t.num_hidden_layers = 4;
  t.num_attention_heads = 4, t.num_key_value_heads = 2, t.head_dim = 16, t.rope_theta = 10000.0;
  t.mrope_section = {4, 2, 2};
  t.max_position_embeddings = 4096;
  auto& v = c.vision;
  v.depth = 3, v.hidden_size = 32, v.intermediate_size = 64, v.num_heads = 4, v.out_hidden_size = 64;
  v.num_position_embeddings = 64, v.deepstack_visual_indexes = {0, 2};
  c.image_token_id = 300, c.video_token_id = 301, c.vision_start_token_id = 302, c.vision_end_token_id = 303;
  c.bos_token_id = 304, c.eos_token_ids = {305}, c.pad_token_id = 304;
  c.tie_word_embeddings = tie;
  c.validate("tiny");
  return c;
}

// Two text tokens, one image of grid (1, 4, 6) (6 merged tokens), three text tokens.
inline std::vector<int64_t> one_image_prompt(const ModelConfig& c) {
  std::vector<int64_t> ids{10, 11, c.vision_start_token_id};
  for (int i = 0; i < 6; ++i) ids.push_back(c.image_token_id);
  ids.insert(ids.end(), {c.vision_end_token_id, 12, 13, 14});
  return ids;
}

// pixel_values in [-1, 1) for `rows` patches of 3x2x16x16, deterministic by seed.
inline torch::Tensor random_pixel_rows(int64_t rows, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::rand({rows, 1536}, gen, torch::kFloat) * 2 - 1;
}

// PVM blocks of width 32 (2 heads of 16; GQA ratio 2 -> 1 kv head) on the tiny model at `layers`,
// seed 5, every gate set to `gate` (0 = the branch adds nothing).
inline void attach_tiny_pvm(Qwen3VLForConditionalGenerationImpl& m, std::vector<int64_t> layers, double gate) {
  TextConfig f = m.cfg.text;
  f.pvm_hidden_size = 32;
  f.pvm_layers = std::move(layers);
  attach_pvm(m, f, 5);
  torch::NoGradGuard ng;
  for (auto& p : m.named_parameters())
    if (p.key().find("gate_alpha") != std::string::npos) p.value().fill_(gate);
}

inline std::string temp_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() /
           ("pvm_test_" + name + "_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(p);
  return p.string();
}

}  // namespace pvm::testing
