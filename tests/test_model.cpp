#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/base/error.h"
#include "engine/base/safetensors.h"
#include "engine/generate.h"
#include "engine/loader.h"
#include "engine/rope.h"
#include "test_util.h"

using namespace pvm;
using pvm::testing::tiny_config;

namespace {

// <|im_start|>-like text, one image of grid (1, gh*2, gw*2), more text.
std::vector<int64_t> prompt_with_images(const ModelConfig& c, const std::vector<std::array<int64_t, 3>>& grids,
                                        int64_t text_before = 4, int64_t text_after = 5) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < text_before; ++i) ids.push_back(10 + i);
  for (auto& g : grids) {
    ids.push_back(c.vision_start_token_id);
    int64_t n = g[0] * g[1] * g[2] / 4;
    for (int64_t i = 0; i < n; ++i) ids.push_back(c.image_token_id);
    ids.push_back(c.vision_end_token_id);
    ids.push_back(42);
  }
  for (int64_t i = 0; i < text_after; ++i) ids.push_back(20 + i);
  return ids;
}

torch::Tensor random_pixels(const std::vector<std::array<int64_t, 3>>& grids, uint64_t seed) {
  int64_t L = 0;
  for (auto& g : grids) L += g[0] * g[1] * g[2];
  auto gen = at::detail::createCPUGenerator(seed);
  return at::rand({L, 3 * 2 * 16 * 16}, gen, torch::kFloat) * 2 - 1;
}

}  // namespace

TEST(RopeIndex, SpecWorkedExample448) {
  // docs/MODEL.md#position-ids: 448x448 image -> grid (1,28,28) -> 196 tokens after 4 text tokens.
  auto c = preset_config("qwen3-vl-2b");
  std::vector<int64_t> ids{151644, 872, 198, c.vision_start_token_id};
  for (int i = 0; i < 196; ++i) ids.push_back(c.image_token_id);
  ids.push_back(c.vision_end_token_id);
  ids.push_back(1000);
  auto r = rope_index({ids}, {{1, 28, 28}}, c);
  auto P = r.position_ids;
  EXPECT_EQ(r.rope_deltas[0], -182);
  for (int64_t s = 0; s < 4; ++s)
    for (int a = 0; a < 3; ++a) EXPECT_EQ(P[a][0][s].item<int64_t>(), s);
  // image token k = row-major (r, c) over the 14x14 merged grid
  for (int64_t k = 0; k < 196; ++k) {
    EXPECT_EQ(P[0][0][4 + k].item<int64_t>(), 4);
    EXPECT_EQ(P[1][0][4 + k].item<int64_t>(), 4 + k / 14);
    EXPECT_EQ(P[2][0][4 + k].item<int64_t>(), 4 + k % 14);
  }
  EXPECT_EQ(P[0][0][200].item<int64_t>(), 18);  // <|vision_end|>
  EXPECT_EQ(P[2][0][201].item<int64_t>(), 19);
}

TEST(RopeIndex, TwoImagesContinueAfterEachOther) {
  auto c = tiny_config();
  // image A grid (1,4,6): merged 2x3 (6 tokens); image B grid (1,6,2): merged 3x1 (3 tokens)
  auto ids = prompt_with_images(c, {{1, 4, 6}, {1, 6, 2}}, 2, 1);
  auto r = rope_index({ids}, {{1, 4, 6}, {1, 6, 2}}, c);
  auto P = r.position_ids;
  // layout: t t vs [6 img] ve x vs [3 img] ve x t
  EXPECT_EQ(P[0][0][2].item<int64_t>(), 2);  // vision_start
  EXPECT_EQ(P[1][0][3 + 5].item<int64_t>(), 3 + 1);  // last of A: row 1
  EXPECT_EQ(P[2][0][3 + 5].item<int64_t>(), 3 + 2);  // col 2
  // after A (s0 = 3, extent max(1,2,3) = 3): vision_end at 6, "x" at 7, vision_start 8, B at s0 = 9
  EXPECT_EQ(P[0][0][9].item<int64_t>(), 6);
  EXPECT_EQ(P[0][0][12].item<int64_t>(), 9);
  EXPECT_EQ(P[1][0][14].item<int64_t>(), 9 + 2);
  EXPECT_EQ(P[2][0][14].item<int64_t>(), 9);
  int64_t S = ids.size();
  int64_t last = P[0][0][S - 1].item<int64_t>();
  EXPECT_EQ(r.rope_deltas[0], last + 1 - S);
  // a grid that disagrees with the token count is an error
  EXPECT_THROW(rope_index({ids}, {{1, 4, 6}, {1, 6, 4}}, c), Error);
  EXPECT_THROW(rope_index({ids}, {{1, 4, 6}}, c), Error);
}

TEST(Rope, InterleavedSectionsPickTheRightStream) {
  auto c = tiny_config();  // head_dim 16 -> 8 freqs, sections [4,2,2]: T H W T H W T T
  auto pos = torch::zeros({3, 1, 1}, torch::kLong);
  pos[0][0][0] = 3, pos[1][0][0] = 5, pos[2][0][0] = 7;
  auto rt = mrope_cos_sin(pos, c.text, torch::kFloat, torch::kCPU);
  std::vector<int> stream{0, 1, 2, 0, 1, 2, 0, 0};
  for (int j = 0; j < 8; ++j) {
    double inv = 1.0 / std::pow(10000.0, 2.0 * j / 16);
    double ang = pos[stream[j]][0][0].item<int64_t>() * inv;
    EXPECT_NEAR(rt.cos[0][0][j].item<float>(), std::cos(ang), 1e-5) << j;
    EXPECT_NEAR(rt.sin[0][0][j + 8].item<float>(), std::sin(ang), 1e-5) << j;
  }
}

class TinyModel : public ::testing::Test {
 protected:
  ModelConfig cfg = tiny_config();
  Qwen3VLForConditionalGeneration m = make_random_model(cfg, 7, torch::kFloat, torch::kCPU);
  std::vector<std::array<int64_t, 3>> grids{{1, 4, 6}, {1, 2, 2}};
  std::vector<int64_t> ids = prompt_with_images(cfg, grids);
  torch::Tensor pix = random_pixels(grids, 3);

  // logits of every position of `seq` without cache
  torch::Tensor full_logits(const std::vector<int64_t>& seq) {
    torch::NoGradGuard ng;
    ForwardInput in;
    in.input_ids = torch::tensor(seq, torch::kLong).view({1, -1});
    in.pixel_values = pix;
    in.grids = grids;
    in.all_logits = true;
    return m->forward(in).logits[0];
  }
};

TEST_F(TinyModel, ParameterNamesAndCountsEqualTheConfigTable) {
  auto params = m->named_parameters(true);
  auto expected = expected_tensors(cfg);
  ASSERT_EQ(params.size(), expected.size());
  for (auto& e : expected) {
    ASSERT_TRUE(params.contains(e.name)) << e.name;
    EXPECT_EQ(params[e.name].sizes().vec(), e.shape) << e.name;
  }
  auto tied = make_random_model(tiny_config(true), 1, torch::kFloat, torch::kCPU);
  EXPECT_FALSE(tied->named_parameters().contains("lm_head.weight"));
}

TEST_F(TinyModel, CachedDecodeEqualsFullRecomputeAtEveryStep) {
  GenerationRequest req;
  req.prompt_ids = ids;
  req.pixel_values = pix;
  req.grids = grids;
  req.max_new_tokens = 12;
  req.stop_ids = {9999};  // never stops early
  std::vector<torch::Tensor> step_logits;
  req.after_forward = [&](const ForwardOutput& o, bool) { step_logits.push_back(o.logits[0][0].clone()); };
  auto res = generate(m, req);
  ASSERT_EQ(res.tokens[0].size(), 12u);
  auto seq = ids;
  seq.insert(seq.end(), res.tokens[0].begin(), res.tokens[0].end() - 1);
  auto full = full_logits(seq);  // [S, V]
  ASSERT_EQ(step_logits.size(), 12u);
  for (size_t i = 0; i < step_logits.size(); ++i) {
    auto ref = full[ids.size() - 1 + i];
    EXPECT_LT((ref - step_logits[i]).abs().max().item<float>(), 2e-5) << "step " << i;
    EXPECT_EQ(ref.argmax().item<int64_t>(), res.tokens[0][i]);
  }
}

// A sampled <|image_pad|> is fed back as a plain text token (HF passes pixels only with the
// prompt); a prompt whose image tokens do not match its images stays an error.
TEST_F(TinyModel, SampledImagePadTokenDecodesAsText) {
  GenerationRequest req;
  req.prompt_ids = ids;
  req.pixel_values = pix;
  req.grids = grids;
  req.max_new_tokens = 3;
  req.stop_ids = {9999};
  int calls = 0;
  req.after_forward = [&](const ForwardOutput& o, bool) {
    torch::Tensor l = o.logits;  // shares storage: sampling reads the edited logits
    if (calls++ == 0) l.index_put_({torch::indexing::Ellipsis, cfg.image_token_id}, 1e9);  // force it once
  };
  GenerationResult res;
  ASSERT_NO_THROW(res = generate(m, req));
  ASSERT_EQ(res.tokens[0].size(), 3u);
  EXPECT_EQ(res.tokens[0][0], cfg.image_token_id);
  EXPECT_NE(res.tokens[0][1], cfg.image_token_id);
  // Without pixels, the token is its row of the text embedding; with a fresh prompt it must have pixels.
  torch::NoGradGuard ng;
  auto e = m->embed(torch::tensor({cfg.image_token_id}, torch::kLong).view({1, 1}), torch::Tensor(), false);
  EXPECT_TRUE(torch::equal(e[0][0], m->model->language_model->embed_tokens->weight[cfg.image_token_id]));
  EXPECT_THROW(m->embed(torch::tensor({cfg.image_token_id}, torch::kLong).view({1, 1}), torch::Tensor()), Error);
}

TEST_F(TinyModel, BatchedGroupEqualsOneByOneAndSeedsReproduce) {
  GenerationRequest req;
  req.prompt_ids = ids;
  req.pixel_values = pix;
  req.grids = grids;
  req.max_new_tokens = 10;
  req.stop_ids = {9999};
  req.sampling.do_sample = true;
  req.sampling.temperature = 1.5;
  req.sampling.top_k = 50;
  req.sampling.top_p = 0.95;
  req.sampling.seed = 11;
  req.num_sequences = 3;
  auto batched = generate(m, req);
  // Sequence g of a batched group = sampler stream g. Re-run each alone with its stream.
  for (int64_t g = 0; g < 3; ++g) {
    GenerationRequest one = req;
    one.num_sequences = g + 1;  // streams 0..g; compare stream g
    auto r = generate(m, one);
    EXPECT_EQ(r.tokens[g], batched.tokens[g]) << "sequence " << g;
  }
  EXPECT_NE(batched.tokens[0], batched.tokens[1]);  // different streams sample differently
  auto again = generate(m, req);
  EXPECT_EQ(again.tokens, batched.tokens);
  req.sampling.do_sample = false;
  req.num_sequences = 1;
  EXPECT_EQ(generate(m, req).tokens, generate(m, req).tokens);
}

TEST_F(TinyModel, ImagesAreIndependentAndDeepstackMatters) {
  // Changing the pixels changes the logits (the image is actually read) ...
  auto a = full_logits(ids);
  pix = random_pixels(grids, 4);
  auto b = full_logits(ids);
  EXPECT_GT((a - b).abs().max().item<float>(), 1e-4);
  // ... and a mismatched image-token count is a clear error.
  auto bad = ids;
  bad.erase(std::find(bad.begin(), bad.end(), cfg.image_token_id));
  EXPECT_THROW(full_logits(bad), Error);
}

TEST_F(TinyModel, PromptLongerThanContextIsAnError) {
  GenerationRequest req;
  req.prompt_ids = ids;
  req.pixel_values = pix;
  req.grids = grids;
  req.max_context = 8;
  EXPECT_THROW(generate(m, req), Error);
}

TEST_F(TinyModel, SaveLoadRoundTripAndBadCheckpoints) {
  namespace fs = std::filesystem;
  auto dir = pvm::testing::temp_dir("roundtrip");
  save_model(m, dir, torch::kFloat);
  LoadOptions opt;
  auto loaded = load_model(dir, opt);
  auto before = full_logits(ids);
  std::swap(m, loaded.model);
  auto after = full_logits(ids);
  std::swap(m, loaded.model);
  EXPECT_TRUE(torch::equal(before, after));

  // sharded round trip in bf16 loads back into f32 and f32 into bf16
  auto sdir = pvm::testing::temp_dir("sharded");
  save_model(m, sdir, torch::kBFloat16, 64 * 1024);
  ASSERT_TRUE(fs::exists(fs::path(sdir) / "model.safetensors.index.json"));
  opt.dtype = torch::kBFloat16;
  auto lb = load_model(sdir, opt);
  EXPECT_EQ(lb.model->dtype(), torch::kBFloat16);

  // a missing shard names the shard
  std::string shard;
  for (auto& e : fs::directory_iterator(sdir))
    if (e.path().extension() == ".safetensors") shard = e.path().string();
  fs::remove(shard);
  try {
    load_model(sdir, opt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fs::path(shard).filename().string()), std::string::npos) << e.what();
  }

  // shapes that disagree with the config: change hidden size in config.json only
  auto cfg2 = cfg;
  cfg2.text.intermediate_size = 100;
  save_config(cfg2, (fs::path(dir) / "config.json").string());
  try {
    load_model(dir, LoadOptions{});
    FAIL();
  } catch (const Error& e) {
    std::string w = e.what();
    EXPECT_TRUE(w.find("down_proj.weight has shape [64, 96] but the config needs [64, 100]") != std::string::npos ||
                w.find("gate_proj.weight has shape [96, 64] but the config needs [100, 64]") != std::string::npos)
        << w;
  }
  // missing + unexpected keys are listed
  save_config(cfg, (fs::path(dir) / "config.json").string());
  auto t = Checkpoint::open(dir);
  std::vector<TensorView> views;
  for (auto& n : t.names())
    if (n != "lm_head.weight") views.push_back(*t.find(n));
  std::vector<float> extra{1.f};
  views.push_back(TensorView{"model.bogus.weight", DType::F32, {1}, (const uint8_t*)extra.data(), 4});
  auto dir3 = pvm::testing::temp_dir("keys");
  write_safetensors((fs::path(dir3) / "model.safetensors").string(), views);
  save_config(cfg, (fs::path(dir3) / "config.json").string());
  try {
    load_model(dir3, LoadOptions{});
    FAIL();
  } catch (const Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("missing keys: lm_head.weight"), std::string::npos) << w;
    EXPECT_NE(w.find("unexpected keys: model.bogus.weight"), std::string::npos) << w;
  }
  for (auto& d : {dir, sdir, dir3}) fs::remove_all(d);
}

TEST(Loader, LegacyKeysMap) {
  EXPECT_EQ(map_legacy_key("visual.blocks.0.attn.qkv.weight"), "model.visual.blocks.0.attn.qkv.weight");
  EXPECT_EQ(map_legacy_key("model.layers.3.mlp.up_proj.weight"), "model.language_model.layers.3.mlp.up_proj.weight");
  EXPECT_EQ(map_legacy_key("model.language_model.norm.weight"), "model.language_model.norm.weight");
  EXPECT_EQ(map_legacy_key("lm_head.weight"), "lm_head.weight");
}
