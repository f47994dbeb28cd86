#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/base/error.h"
#include "engine/generate.h"
#include "engine/loader.h"
#include "engine/pvm.h"
#include "test_util.h"

using namespace pvm;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  ModelConfig cfg = pvm::testing::tiny_config();
  Qwen3VLForConditionalGeneration m = make_random_model(cfg, 7, torch::kFloat, torch::kCPU);
  std::vector<std::array<int64_t, 3>> grids{{1, 4, 6}};
  std::vector<int64_t> ids;
  torch::Tensor pix;
  Fixture() {
    ids = pvm::testing::one_image_prompt(cfg);
    pix = pvm::testing::random_pixel_rows(24, 3);
  }
  torch::Tensor logits(bool pvm_on, const std::vector<int64_t>& seq, bool with_image = true,
                       std::map<int64_t, PvmProbe>* probes = nullptr) {
    torch::NoGradGuard ng;
    ForwardInput in;
    in.input_ids = torch::tensor(seq, torch::kLong).view({1, -1});
    if (with_image) in.pixel_values = pix, in.grids = grids;
    in.all_logits = true;
    in.pvm = pvm_on;
    ForwardHooks hooks;
    hooks.pvm = probes;
    return m->forward(in, nullptr, hooks).logits[0];
  }
  void attach(std::vector<int64_t> layers = {1, 3}, double gate = 0.0) {
    pvm::testing::attach_tiny_pvm(*m, std::move(layers), gate);
  }
};

}  // namespace

TEST(Pvm, ParameterCountMatchesTheConfigTable) {
  Fixture f;
  f.attach();
  int64_t n = 0;
  for (auto& p : f.m->named_parameters())
    if (p.key().find(".pvm_block.") != std::string::npos) n += p.value().numel();
  EXPECT_EQ(n, parameter_counts(f.m->config())["pvm"]);
  EXPECT_EQ(f.m->config().pvm_kv_heads(), 1);
  EXPECT_GT(n, 0);
}

TEST(Pvm, GateZeroLeavesLogitsExactlyUnchanged) {
  Fixture f;
  auto base = f.logits(false, f.ids);
  f.attach({1, 3}, 0.0);
  EXPECT_TRUE(torch::equal(base, f.logits(true, f.ids)));
  f.attach({1, 3}, 0.5);
  EXPECT_GT((base - f.logits(true, f.ids)).abs().max().item<float>(), 1e-4);  // and a live gate does act
  EXPECT_TRUE(torch::equal(base, f.logits(false, f.ids)));                    // run-time switch
}

TEST(Pvm, AttentionSumsToOneAndSilencingZeroesVisualPositions) {
  Fixture f;
  f.attach({1, 3}, 0.7);
  {
    // realistic magnitudes, so the weightless RMSNorm's eps is negligible
    torch::NoGradGuard ng;
    for (int l : {1, 3})
      for (auto& p : f.m->model->language_model->layer_list[l]->pvm_block->parameters())
        if (p.dim() == 2) p.mul_(10);
  }
  std::map<int64_t, PvmProbe> probes;
  f.logits(true, f.ids, true, &probes);
  ASSERT_EQ(probes.size(), 2u);
  for (auto& [l, p] : probes) {
    ASSERT_EQ(p.attn.sizes(), (std::vector<int64_t>{1, 2, 6}));
    EXPECT_LT((p.attn.sum(-1) - 1).abs().max().item<float>(), 1e-6);
    EXPECT_NEAR(p.gate.item<float>(), 0.7f, 1e-7);
    // each injected vector has RMS |gate| => norm = |gate| * sqrt(H)
    EXPECT_NEAR(p.injection[0].norm().item<float>(), 0.7f * std::sqrt(64.f), 1e-3);
  }
  // direct call: output is zero exactly on silenced (placeholder) positions, non-zero elsewhere
  auto& block = f.m->model->language_model->layer_list[1]->pvm_block;
  auto h = torch::randn({1, 5, 64});
  auto vis = torch::randn({1, 6, 64});
  auto mem = block->make_memory(vis, torch::Tensor());
  auto silence = torch::tensor({false, true, true, false, false}).view({1, 5});
  auto out = block->forward(h, mem, silence);
  EXPECT_EQ(out[0][1].abs().max().item<float>(), 0.f);
  EXPECT_EQ(out[0][2].abs().max().item<float>(), 0.f);
  EXPECT_GT(out[0][0].abs().max().item<float>(), 0.f);
}

TEST(Pvm, BlockMatchesAnExplicitComputation) {
  Fixture f;
  f.attach({2}, -0.3);
  auto& b = f.m->model->language_model->layer_list[2]->pvm_block;
  torch::NoGradGuard ng;
  auto h = torch::randn({1, 3, 64}, torch::kDouble).to(torch::kFloat);
  auto vis = torch::randn({1, 5, 64});
  auto out = b->forward(h, b->make_memory(vis, torch::Tensor()), torch::Tensor());
  // explicit, in double, straight from the equations of docs/MODEL.md#pvm
  auto D = [](const torch::Tensor& t) { return t.to(torch::kDouble); };
  auto rms = [](const torch::Tensor& x, const torch::Tensor& w) {
    return x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-6) * w;
  };
  auto lin = [&](const torch::Tensor& x, const Linear& l) { return torch::matmul(x, D(l->weight).t()); };
  auto ca = b->cross_attn;
  auto t = rms(lin(D(h), b->text_reducer), D(b->input_norm->weight));
  auto v = lin(D(vis), b->vision_reducer);
  auto K = rms(lin(v, ca->k_proj), D(ca->k_norm->weight));  // [1, 5, 16] one kv head
  auto V = lin(v, ca->v_proj);
  auto q = lin(t, ca->q_proj).view({1, 3, 2, 16});
  std::vector<torch::Tensor> heads;
  for (int hh = 0; hh < 2; ++hh) {
    auto qh = rms(q.select(2, hh), D(ca->q_norm->weight));                    // [1, 3, 16]
    auto p = torch::softmax(torch::matmul(qh, K.transpose(1, 2)) / 4.0, -1);  // [1, 3, 5]
    heads.push_back(torch::matmul(p, V));
  }
  auto m_raw = lin(torch::cat(heads, -1), ca->o_proj);
  auto n = rms(m_raw, D(b->post_attn_norm->weight));
  auto m = m_raw + lin(torch::silu(lin(n, b->mlp->gate_proj)) * lin(n, b->mlp->up_proj), b->mlp->down_proj);
  auto r = lin(m, b->output_expander);
  auto ref = -0.3 * r * torch::rsqrt(r.pow(2).mean(-1, true) + 1e-6);
  EXPECT_LT((D(out) - ref).abs().max().item<double>(), 1e-5);
}

TEST(Pvm, TextOnlyPromptsGetNoPvm) {
  Fixture f;
  std::vector<int64_t> text{10, 11, 12, 13, 14, 15};
  auto base = f.logits(false, text, false);
  f.attach({1, 3}, 0.9);
  EXPECT_TRUE(torch::equal(base, f.logits(true, text, false)));
}

TEST(Pvm, CachedDecodeEqualsFullRecomputeWithPvm) {
  Fixture f;
  f.attach({1, 3}, 0.8);
  GenerationRequest req;
  req.prompt_ids = f.ids;
  req.pixel_values = f.pix;
  req.grids = f.grids;
  req.max_new_tokens = 8;
  req.stop_ids = {9999};
  std::vector<torch::Tensor> step;
  req.after_forward = [&](const ForwardOutput& o, bool) { step.push_back(o.logits[0][0].clone()); };
  auto res = generate(f.m, req);
  auto seq = f.ids;
  seq.insert(seq.end(), res.tokens[0].begin(), res.tokens[0].end() - 1);
  auto full = f.logits(true, seq);
  for (size_t i = 0; i < step.size(); ++i)
    EXPECT_LT((full[f.ids.size() - 1 + i] - step[i]).abs().max().item<float>(), 2e-5) << i;
  // a GRPO-style group shares the prefill, including the cached visual memory
  req.num_sequences = 2;
  req.after_forward = nullptr;
  auto g = generate(f.m, req);
  EXPECT_EQ(g.tokens[0], res.tokens[0]);
  EXPECT_EQ(g.tokens[1], res.tokens[0]);  // greedy: both rows identical
}

TEST(Pvm, AdapterRoundTripAndOfficialLayoutCheckpoint) {
  Fixture f;
  f.attach({1, 3}, 0.6);
  auto want = f.logits(true, f.ids);
  auto adir = pvm::testing::temp_dir("adapter");
  save_pvm_adapter(*f.m, adir);
  ASSERT_TRUE(fs::exists(fs::path(adir) / "adapter_config.json"));
  // fresh base with the same backbone weights (same seed), then the adapter
  Fixture g;
  EXPECT_FALSE(g.m->config().has_pvm());
  load_pvm_adapter(*g.m, adir);
  EXPECT_TRUE(torch::equal(want, g.logits(true, f.ids)));

  // official layout: PVM weights inside a full checkpoint, config carries pvm_hidden_size/pvm_layers
  auto mdir = pvm::testing::temp_dir("full");
  save_model(f.m, mdir, torch::kFloat);
  auto lm = load_model(mdir, LoadOptions{});
  EXPECT_EQ(lm.config.text.pvm_layers, (std::vector<int64_t>{1, 3}));
  EXPECT_TRUE(lm.model->named_parameters().contains("model.language_model.layers.3.pvm_block.cross_attn.k_norm.weight"));
  std::swap(g.m, lm.model);
  EXPECT_TRUE(torch::equal(want, g.logits(true, f.ids)));
  fs::remove_all(adir);
  fs::remove_all(mdir);
}

TEST(Pvm, BadAdaptersAndConfigsAreClearErrors) {
  Fixture f;
  f.attach({1, 3}, 0.6);
  auto adir = pvm::testing::temp_dir("badadapter");
  save_pvm_adapter(*f.m, adir);
  auto write_cfg = [&](const std::string& s) { std::ofstream(fs::path(adir) / "adapter_config.json") << s; };
  Fixture g;
  auto expect_err = [&](const std::string& needle) {
    try {
      load_pvm_adapter(*g.m, adir);
      FAIL() << "expected error containing " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(g.m->config().has_pvm());  // a failed load leaves the model as it was
  };
  write_cfg(R"({"pvm_hidden_size":32,"pvm_layers":[1,3],"base_hidden_size":2048})");
  expect_err("adapter is for hidden size 2048");
  write_cfg(R"({"pvm_hidden_size":32,"pvm_layers":[1,9]})");
  expect_err("pvm_layers has layer 9");
  write_cfg(R"({"pvm_hidden_size":32,"pvm_layers":[1,3],"pvm_variant":"lstm"})");
  expect_err("pvm_variant");
  write_cfg(R"({"pvm_hidden_size":32,"pvm_layers":[1,2]})");
  expect_err("missing");
  write_cfg("{oops");
  expect_err("not valid JSON");
  fs::remove_all(adir);
}

TEST(Pvm, AblationVariantsRun) {
  Fixture f;
  auto base = f.logits(false, f.ids);
  TextConfig t = f.cfg.text;
  t.pvm_hidden_size = 32;
  t.pvm_layers = {1};
  for (std::string variant : {"mlp", "pvm"})
    for (std::string source : {"embeddings", "hidden"}) {
      t.pvm_variant = variant;
      t.pvm_source = source;
      attach_pvm(*f.m, t, 1);
      torch::NoGradGuard ng;
      f.m->model->language_model->layer_list[1]->pvm_block->gate_alpha.fill_(0.5);
      auto l = f.logits(true, f.ids);
      EXPECT_GT((l - base).abs().max().item<float>(), 1e-5) << variant << "/" << source;
    }
  // the mlp variant reads no image: changing the pixels changes only the backbone's part
  t.pvm_variant = "mlp";
  t.pvm_source = "embeddings";
  attach_pvm(*f.m, t, 1);
  auto a_on = f.logits(true, f.ids), a_off = f.logits(false, f.ids);
  f.pix = f.pix.flip(0);
  auto b_on = f.logits(true, f.ids), b_off = f.logits(false, f.ids);
  EXPECT_GT((b_off - a_off).abs().max().item<float>(), 1e-5);
}
