#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/base/error.h"
#include "engine/generate.h"
#include "engine/loader.h"
#include "engine/plot_png.h"
#include "engine/probes.h"
#include "engine/pvm.h"
#include "test_util.h"

using namespace pvm;

namespace {

struct Fixture {
  ModelConfig cfg = pvm::testing::tiny_config();
  Qwen3VLForConditionalGeneration m = make_random_model(cfg, 11, torch::kFloat, torch::kCPU);
  std::vector<std::array<int64_t, 3>> grids{{1, 4, 6}};
  std::vector<int64_t> ids;
  torch::Tensor pix;
  Fixture() {
    ids = pvm::testing::one_image_prompt(cfg);
    pix = pvm::testing::random_pixel_rows(24, 3);
    // sharper attention than the 0.02 init gives, so visual mass varies across heads and layers
    torch::NoGradGuard ng;
    for (auto& l : m->model->language_model->layer_list) {
      l->self_attn->q_proj->weight.mul_(8);
      l->self_attn->k_proj->weight.mul_(8);
    }
  }
  void attach_pvm_blocks(double gate) { pvm::testing::attach_tiny_pvm(*m, {1, 3}, gate); }
  GenerationRequest request(int64_t n) {
    GenerationRequest req;
    req.prompt_ids = ids;
    req.pixel_values = pix;
    req.grids = grids;
    req.max_new_tokens = n;
    req.stop_ids = {9999};
    return req;
  }
  // Explicit reference: the last position's attention probabilities [Hq, S] (double) of every
  // layer, recomputed without cache from the layer inputs with the model's own projections.
  std::vector<torch::Tensor> reference_probs(const std::vector<int64_t>& seq) {
    torch::NoGradGuard ng;
    ForwardInput in;
    in.input_ids = torch::tensor(seq, torch::kLong).view({1, -1});
    in.pixel_values = pix, in.grids = grids;
    ForwardHooks hooks;
    std::vector<torch::Tensor> outs(cfg.text.num_hidden_layers);
    hooks.layer_output = [&](int64_t l, const torch::Tensor& h) { outs[l] = h.clone(); };
    auto o = m->forward(in, nullptr, hooks);
    auto x0 = m->embed(in.input_ids, o.image_embeds);
    auto pos = rope_index(std::vector<std::vector<int64_t>>{seq}, grids, cfg).position_ids;
    auto rt = mrope_cos_sin(pos, cfg.text, torch::kFloat, torch::kCPU);
    const int64_t S = (int64_t)seq.size(), Hq = cfg.text.num_attention_heads, Hkv = cfg.text.num_key_value_heads,
                  D = cfg.text.head_dim;
    std::vector<torch::Tensor> res;
    for (int64_t l = 0; l < cfg.text.num_hidden_layers; ++l) {
      auto& a = m->model->language_model->layer_list[l];
      auto x = a->input_layernorm(l == 0 ? x0 : outs[l - 1]);
      auto q = a->self_attn->q_norm(a->self_attn->q_proj(x).view({1, S, Hq, D})).transpose(1, 2);
      auto k = a->self_attn->k_norm(a->self_attn->k_proj(x).view({1, S, Hkv, D})).transpose(1, 2);
      q = apply_rope(q, rt.cos, rt.sin).to(torch::kDouble)[0];  // [Hq, S, D]
      k = apply_rope(k, rt.cos, rt.sin).to(torch::kDouble)[0];  // [Hkv, S, D]
      auto kk = k.repeat_interleave(Hq / Hkv, 0);               // head h uses kv head h / G
      auto scores = (q.select(1, S - 1).unsqueeze(1) * kk).sum(-1) / std::sqrt((double)D);  // [Hq, S]
      res.push_back(torch::softmax(scores, -1));
    }
    return res;
  }
};

}  // namespace

TEST(Probes, VisualMassEqualsAnExplicitSoftmaxPerHeadAndAveraged) {
  Fixture f;
  f.attach_pvm_blocks(0.5);
  ProbeOptions opt;
  opt.per_head = true;
  ProbeRecorder rec(f.m, visual_positions(f.ids, f.cfg.image_token_id), opt, f.grids);
  auto req = f.request(5);
  rec.attach(req);
  auto res = generate(f.m, req);
  ASSERT_EQ(rec.tokens().size(), res.tokens[0].size());
  const int64_t L = f.cfg.text.num_hidden_layers;
  // one sink per layer (1% of 6 visual tokens, at least one), and it is a visual position
  ASSERT_EQ((int64_t)rec.sinks().size(), L);
  for (auto& s : rec.sinks()) {
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(f.ids[s[0]], f.cfg.image_token_id);
  }
  std::vector<int64_t> vis;
  for (size_t i = 0; i < f.ids.size(); ++i)
    if (f.ids[i] == f.cfg.image_token_id) vis.push_back((int64_t)i);
  auto vis_t = torch::tensor(vis, torch::kLong);
  double spread = 0;
  for (size_t i = 0; i < rec.tokens().size(); ++i) {
    const auto& t = rec.tokens()[i];
    EXPECT_EQ(t.step, (int64_t)i);
    EXPECT_EQ(t.token, res.tokens[0][i]);
    auto seq = f.ids;
    seq.insert(seq.end(), res.tokens[0].begin(), res.tokens[0].begin() + i);  // the context that produced token i
    EXPECT_EQ(t.keys, (int64_t)seq.size());
    auto ref = f.reference_probs(seq);
    ASSERT_EQ((int64_t)t.mass.size(), L);
    ASSERT_EQ((int64_t)t.mass_heads.size(), L);
    for (int64_t l = 0; l < L; ++l) {
      auto heads = ref[l].index_select(1, vis_t).sum(1);  // [Hq]
      auto sink = ref[l].index_select(1, torch::tensor(rec.sinks()[l], torch::kLong)).sum(1);
      for (int64_t h = 0; h < heads.size(0); ++h)
        EXPECT_NEAR(t.mass_heads[l][h], heads[h].item<double>(), 1e-5) << "token " << i << " layer " << l << " head " << h;
      EXPECT_NEAR(t.mass[l], heads.mean().item<double>(), 1e-5);
      EXPECT_NEAR(t.mass_nosink[l], (heads - sink).mean().item<double>(), 1e-5);
      EXPECT_GE(t.mass[l], 0.f);
      EXPECT_LE(t.mass[l], 1.f);
      EXPECT_LE(t.mass_nosink[l], t.mass[l] + 1e-7);
      spread = std::max(spread, (heads.max() - heads.min()).item<double>());
    }
  }
  EXPECT_GT(spread, 1e-3);  // the check is not comparing constants
}

TEST(Probes, PvmLogitLensHeatmapAndJsonl) {
  Fixture f;
  f.attach_pvm_blocks(0.5);
  ProbeOptions opt;
  opt.heatmap = true;
  opt.logit_lens = true;
  ProbeRecorder rec(f.m, visual_positions(f.ids, f.cfg.image_token_id), opt, f.grids,
                    f.cfg.vision.spatial_merge_size);
  int calls = 0;
  rec.on_probe = [&](const TokenProbe&) { ++calls; };
  auto req = f.request(4);
  int user_calls = 0;
  req.on_token = [&](int64_t, int64_t, int64_t) { return ++user_calls < 100; };
  rec.attach(req);
  auto res = generate(f.m, req);
  ASSERT_EQ(rec.tokens().size(), 4u);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(user_calls, 4);  // the caller's own on_token still runs
  const int64_t L = f.cfg.text.num_hidden_layers;
  for (size_t i = 0; i < rec.tokens().size(); ++i) {
    const auto& t = rec.tokens()[i];
    ASSERT_EQ(t.pvm.size(), 2u);
    EXPECT_EQ(t.pvm[0].layer, 1);
    EXPECT_EQ(t.pvm[1].layer, 3);
    for (auto& p : t.pvm) {
      EXPECT_NEAR(p.gate, 0.5f, 1e-7);
      EXPECT_GE(p.entropy, 0.f);
      EXPECT_LE(p.entropy, std::log(6.0) + 1e-5);
      EXPECT_GT(p.ratio, 0.f);
      EXPECT_NEAR(p.ratio, p.injection_norm / p.residual_norm, 1e-6);
      ASSERT_EQ(p.top.size(), 5u);
      for (size_t k = 1; k < p.top_p.size(); ++k) EXPECT_GE(p.top_p[k - 1], p.top_p[k]);
      for (auto idx : p.top) EXPECT_TRUE(idx >= 0 && idx < 6);
    }
    ASSERT_EQ((int64_t)t.lens_kl.size(), L);
    EXPECT_GE(t.lens_first_layer, 0);
    EXPECT_LE(t.lens_first_layer, L - 1);
    EXPECT_LT(t.lens_kl[L - 1], 1e-5);  // the last layer's lens is the model's own distribution
    for (auto kl : t.lens_kl) EXPECT_GE(kl, 0.f);
    EXPECT_GT(*std::max_element(t.lens_kl.begin(), t.lens_kl.end() - 1), 1e-4);  // earlier layers differ
    // heatmap: merged grid 2 x 3 of the 4 x 6 patch image; its sum is the layer's visual mass
    for (int64_t l = 0; l < L; ++l) {
      auto hm = rec.heatmap(i, l, 0);
      ASSERT_EQ(hm.sizes(), (std::vector<int64_t>{2, 3}));
      EXPECT_NEAR(hm.sum().item<float>(), t.mass[l], 1e-5);
    }
    // layer -1 = the mean over layers
    double mean_mass = 0;
    for (auto v : t.mass) mean_mass += v / L;
    EXPECT_NEAR(rec.heatmap(i, -1, 0).sum().item<float>(), mean_mass, 1e-5);
    // PVM read-out on the grid: a distribution over the visual memory (sums to 1 per layer), and
    // its top patch is the one the probe reports first
    for (auto& p : t.pvm) {
      auto hm = rec.pvm_heatmap(i, p.layer, 0);
      ASSERT_EQ(hm.sizes(), (std::vector<int64_t>{2, 3}));
      EXPECT_NEAR(hm.sum().item<float>(), 1.0, 1e-5);
      EXPECT_EQ(hm.flatten().argmax().item<int64_t>(), p.top[0]);
    }
    EXPECT_NEAR(rec.pvm_heatmap(i, -1, 0).sum().item<float>(), 1.0, 1e-5);
    EXPECT_THROW(rec.pvm_heatmap(i, 0, 0), Error);  // layer 0 has no PVM block
  }
  EXPECT_THROW(rec.heatmap(9, 0, 0), Error);
  auto dir = pvm::testing::temp_dir("probes");
  rec.write_jsonl(dir + "/t.jsonl");
  std::ifstream in(dir + "/t.jsonl");
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["step"].get<int64_t>(), (int64_t)n);
    EXPECT_EQ(j["token"].get<int64_t>(), res.tokens[0][n]);
    EXPECT_EQ((int64_t)j["mass"].size(), L);
    EXPECT_EQ(j["pvm"].size(), 2u);
    EXPECT_NEAR(j["mass"][2].get<double>(), rec.tokens()[n].mass[2], 1e-6);
    ++n;
  }
  EXPECT_EQ(n, 4u);
}

// The host loops (f32 CPU) and the tensor path (what CUDA runs) record the same values.
TEST(Probes, HostAndTensorPathsAgree) {
  Fixture f;
  f.attach_pvm_blocks(0.5);
  std::vector<std::vector<TokenProbe>> runs;
  for (bool host : {true, false}) {
    ProbeOptions opt;
    opt.per_head = opt.heatmap = opt.logit_lens = true;
    opt.host = host;
    ProbeRecorder rec(f.m, visual_positions(f.ids, f.cfg.image_token_id), opt, f.grids,
                      f.cfg.vision.spatial_merge_size);
    auto req = f.request(5);
    rec.attach(req);
    auto res = generate(f.m, req);
    runs.push_back(rec.tokens());
    // the hooks' own time (the benchmark's overhead figure) is counted, and is part of the decode time
    EXPECT_GT(rec.decode_probe_seconds(), 0.0);
    EXPECT_LT(rec.decode_probe_seconds() * 1000.0, res.decode_ms);
  }
  ASSERT_EQ(runs[0].size(), 5u);
  ASSERT_EQ(runs[1].size(), 5u);
  auto near = [](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    ASSERT_FALSE(a.empty()) << what;
    for (size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 1e-5) << what << " " << k;
  };
  for (size_t i = 0; i < 5; ++i) {
    const auto &a = runs[0][i], &b = runs[1][i];
    EXPECT_EQ(a.token, b.token);
    near(a.mass, b.mass, "mass");
    near(a.mass_nosink, b.mass_nosink, "mass_nosink");
    ASSERT_EQ(a.mass_heads.size(), b.mass_heads.size());
    for (size_t l = 0; l < a.mass_heads.size(); ++l) near(a.mass_heads[l], b.mass_heads[l], "mass_heads");
    ASSERT_EQ(a.visual_attn.size(), b.visual_attn.size());
    for (size_t l = 0; l < a.visual_attn.size(); ++l) near(a.visual_attn[l], b.visual_attn[l], "visual_attn");
    near(a.lens_kl, b.lens_kl, "lens_kl");
    EXPECT_EQ(a.lens_first_layer, b.lens_first_layer);
    ASSERT_EQ(a.pvm.size(), 2u);
    ASSERT_EQ(b.pvm.size(), 2u);
    for (size_t k = 0; k < 2; ++k) {
      EXPECT_NEAR(a.pvm[k].gate, b.pvm[k].gate, 1e-7);
      EXPECT_NEAR(a.pvm[k].injection_norm, b.pvm[k].injection_norm, 1e-4);
      EXPECT_NEAR(a.pvm[k].residual_norm, b.pvm[k].residual_norm, 1e-4);
      EXPECT_NEAR(a.pvm[k].entropy, b.pvm[k].entropy, 1e-5);
      near(a.pvm[k].attn, b.pvm[k].attn, "pvm attn");
      EXPECT_EQ(a.pvm[k].top, b.pvm[k].top);
    }
  }
}

TEST(Probes, AllOffAttachesNothingAndBaselineHasNoPvmProbes) {
  Fixture f;
  f.attach_pvm_blocks(0.5);
  ProbeOptions off{false, false, false, false, false, false};
  ProbeRecorder none(f.m, visual_positions(f.ids, f.cfg.image_token_id), off);
  auto req = f.request(3);
  none.attach(req);
  EXPECT_FALSE((bool)req.configure);
  EXPECT_FALSE((bool)req.after_forward);
  EXPECT_FALSE((bool)req.on_token);
  generate(f.m, req);
  EXPECT_TRUE(none.tokens().empty());

  ProbeRecorder rec(f.m, visual_positions(f.ids, f.cfg.image_token_id));
  auto base = f.request(3);
  base.pvm = false;
  rec.attach(base);
  generate(f.m, base);
  ASSERT_EQ(rec.tokens().size(), 3u);
  for (auto& t : rec.tokens()) {
    EXPECT_TRUE(t.pvm.empty());
    EXPECT_EQ(t.mass.size(), 4u);
    EXPECT_TRUE(t.lens_kl.empty());
  }
  EXPECT_THROW(ProbeRecorder(f.m, {true, false}, ProbeOptions{true, false, true, true, true, false}, f.grids), Error);
}

TEST(Probes, FitsRecoverKnownCurves) {
  std::vector<double> t, y, yp;
  for (int i = 1; i <= 200; ++i) {
    t.push_back(i);
    y.push_back(0.7 / (i + 12.0));
    yp.push_back(2.0 * std::pow(i, -0.5));
  }
  auto h = fit_hyperbolic(t, y);
  EXPECT_NEAR(h.c, 0.7, 1e-3);
  EXPECT_NEAR(h.t0, 12.0, 0.05);
  EXPECT_GT(h.r2, 0.99999);
  EXPECT_EQ(h.n, 200);
  auto p = fit_power_law(t, yp);
  EXPECT_NEAR(p.k, 0.5, 1e-9);
  EXPECT_NEAR(p.a, 2.0, 1e-9);
  EXPECT_NEAR(p.r2, 1.0, 1e-12);
  // a power law is not hyperbolic: worse fit; noise lowers R^2
  EXPECT_LT(fit_hyperbolic(t, yp).r2, h.r2);
  std::vector<double> noisy = y;
  for (size_t i = 0; i < noisy.size(); ++i) noisy[i] += (i % 2 ? 1 : -1) * 0.01;
  EXPECT_LT(fit_hyperbolic(t, noisy).r2, 0.9);
}

TEST(Probes, LinePlotDrawsSeriesAxesAndText) {
  PlotSpec s;
  s.width = 400, s.height = 240;
  s.title = "mass";
  PlotSeries a;
  a.name = "baseline";
  a.color = rgb(200, 0, 0);
  for (int i = 0; i < 50; ++i) a.x.push_back(i), a.y.push_back(1.0 / (i + 5));
  s.series.push_back(a);
  auto img = render_line_plot(s);
  ASSERT_EQ(img.width, 400);
  ASSERT_EQ((int)img.rgb.size(), 400 * 240 * 3);
  int red = 0, black = 0;
  for (size_t i = 0; i < img.rgb.size(); i += 3) {
    red += img.rgb[i] == 200 && img.rgb[i + 1] == 0 && img.rgb[i + 2] == 0;
    black += img.rgb[i] == 0 && img.rgb[i + 1] == 0 && img.rgb[i + 2] == 0;
  }
  EXPECT_GT(red, 100);    // the line and its legend swatch
  EXPECT_GT(black, 300);  // axes and text
  ImageRGB blank;
  blank.width = 40, blank.height = 12;
  blank.rgb.assign(40 * 12 * 3, 255);
  EXPECT_EQ(draw_text(blank, 0, 0, "0.5", {0, 0, 0}, 2), 24);
  EXPECT_EQ(text_width("0.5", 2), 22);
  int ink = 0;
  for (auto b : blank.rgb) ink += b == 0;
  EXPECT_GT(ink, 0);
  auto ticks = nice_ticks(0.0, 1.0, 6);
  ASSERT_EQ(ticks.size(), 6u);
  EXPECT_NEAR(ticks[1], 0.2, 1e-12);
  s.width = 10;
  EXPECT_THROW(render_line_plot(s), Error);
  s.width = 400;
  auto dir = pvm::testing::temp_dir("plot");
  write_line_plot(dir + "/p.png", s);
  std::ifstream f(dir + "/p.png", std::ios::binary);
  char sig[4] = {};
  f.read(sig, 4);
  EXPECT_EQ(std::string(sig + 1, 3), "PNG");
}

// On log-log axes a power law is a straight line; on linear axes it is not.
TEST(Probes, LogLogPlotDrawsAPowerLawStraight) {
  PlotSpec s;
  s.width = 500, s.height = 300;
  PlotSeries a;  // no label: no legend box over the line
  a.color = rgb(200, 0, 0);
  a.thickness = 1;
  for (int i = 1; i <= 400; ++i) a.x.push_back(i), a.y.push_back(3.0 * std::pow(i, -0.7));
  a.x.push_back(0), a.y.push_back(1);  // not drawable on a log axis: skipped, not a crash
  s.series.push_back(a);
  auto max_residual = [&](bool log) {
    s.logx = s.logy = log;
    auto img = render_line_plot(s);
    std::vector<double> xs, ys;
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x)
        if (img.at(y, x, 0) == 200 && img.at(y, x, 1) == 0 && img.at(y, x, 2) == 0) xs.push_back(x), ys.push_back(y);
    EXPECT_GT(xs.size(), 100u);
    double n = xs.size(), mx = 0, my = 0, sxx = 0, sxy = 0;
    for (size_t i = 0; i < xs.size(); ++i) mx += xs[i] / n, my += ys[i] / n;
    for (size_t i = 0; i < xs.size(); ++i) sxx += (xs[i] - mx) * (xs[i] - mx), sxy += (xs[i] - mx) * (ys[i] - my);
    double b = sxy / sxx, r = 0;
    for (size_t i = 0; i < xs.size(); ++i) r = std::max(r, std::abs(ys[i] - (my + b * (xs[i] - mx))));
    return r;
  };
  EXPECT_LT(max_residual(true), 3.0);
  EXPECT_GT(max_residual(false), 30.0);
}

TEST(Probes, HeatmapOverlayMarksTheHottestCell) {
  ImageRGB img;
  img.width = 64, img.height = 32;
  img.rgb.assign(64 * 32 * 3, 128);
  std::vector<float> grid(2 * 4, 0.f);
  grid[1 * 4 + 2] = 1.f;  // row 1, column 2
  auto out = render_heatmap_overlay(img, grid, 2, 4, "test", 0.8, 128);
  ASSERT_EQ(out.width, 256);  // scaled 4x to reach 128 px on the short side
  ASSERT_GE(out.height, 128);
  auto px = [&](int y, int x, int c) { return (int)out.at(y, x, c); };
  // centre of the hot cell is red-dominant, a cold cell blue-dominant
  EXPECT_GT(px(96, 160, 0), px(96, 160, 2) + 60);
  EXPECT_GT(px(32, 32, 2), px(32, 32, 0) + 30);
  EXPECT_THROW(render_heatmap_overlay(img, grid, 3, 4, "bad"), Error);
  EXPECT_THROW(render_heatmap_overlay(ImageRGB{}, grid, 2, 4, "empty"), Error);
}

TEST(Probes, PromptPresetsLoadByName) {
  auto bp = load_prompt_preset("blind-painter");
  EXPECT_NE(bp.find("blind painter"), std::string::npos);
  EXPECT_EQ(load_prompt_preset("blind_painter"), bp);
  auto sr = load_prompt_preset("structured-reasoning");
  EXPECT_NE(sr.find("<think>"), std::string::npos);
  EXPECT_NE(sr.find("<answer>"), std::string::npos);
  EXPECT_THROW(load_prompt_preset("no-such-preset"), Error);
  EXPECT_THROW(load_prompt_preset("../etc"), Error);
}

// A run of n generated tokens with per-head probes, the request first changed by `set`.
static std::pair<std::unique_ptr<ProbeRecorder>, GenerationResult> probed_run(Fixture& f, int64_t n,
                                                                      const std::function<void(GenerationRequest&)>& set) {
  ProbeOptions opt;
  opt.per_head = true;
  auto rec = std::make_unique<ProbeRecorder>(f.m, visual_positions(f.ids, f.cfg.image_token_id), opt, f.grids);
  auto req = f.request(n);
  set(req);
  rec->attach(req);
  auto res = generate(f.m, req);
  return {std::move(rec), res};
}

// Its length-matched form (visual_attention_restore = K): the decode step whose query sees n = P + k
// keys multiplies the image weight by (n / P)^K. Layer 0's queries and keys depend only on the token
// ids, so wherever the generated prefix equals the plain run's, layer 0's head masses must be exactly
// s_k m / (s_k m + 1 - m) with s_k = ((P + k) / P)^K. Out-of-range exponents are refused.
TEST(Probes, VisualAttentionRestoreGrowsWithTheAnswer) {
  Fixture f;
  auto run = [&](double k) { return probed_run(f, 6, [&](GenerationRequest& r) { r.visual_attention_restore = k; }); };
  const double P = double(f.request(1).prompt_ids.size());
  auto [r0, g0] = run(0.0);
  for (const double K : {4.0, -4.0}) {  // K < 0: the image fades faster than the answer's length makes it
    auto [rk, gk] = run(K);
    ASSERT_EQ(rk->tokens().size(), r0->tokens().size());
    int checked = 0;
    for (size_t step = 1; step < rk->tokens().size(); ++step) {
      if (!std::equal(g0.tokens[0].begin(), g0.tokens[0].begin() + step, gk.tokens[0].begin())) break;
      const double s = std::pow((P + double(step)) / P, K);
      const auto& a = r0->tokens()[step].mass_heads[0];
      const auto& b = rk->tokens()[step].mass_heads[0];
      for (size_t h = 0; h < a.size(); ++h)
        EXPECT_NEAR(b[h], s * a[h] / (s * a[h] + 1 - a[h]), 1e-5) << "K " << K << " step " << step << " head " << h;
      ++checked;
    }
    EXPECT_GE(checked, 1) << K;
    const float m0 = r0->tokens()[1].mass_heads[0][0], mk = rk->tokens()[1].mass_heads[0][0];
    EXPECT_GT(K > 0 ? mk - m0 : m0 - mk, 1e-5) << K;  // it acts, in K's direction
  }
  auto req = f.request(2);
  for (double bad : {-4.5, 4.5, std::nan("")}) {
    req.visual_attention_restore = bad;
    EXPECT_THROW(generate(f.m, req), Error) << bad;
  }
  req.visual_attention_restore = 1.0;
  req.vismem.enabled = true;
  EXPECT_THROW(generate(f.m, req), Error);
}

// The visual-attention intervention (GenerationRequest::visual_attention_scale): the first token
// comes from the prompt's pass, unchanged; at the first decode step layer 0 sees the same inputs
// with and without it, so each head's image mass must be exactly s m / (s m + 1 - m), m the mass
// without it. Out-of-range scales and VisMem together with it are refused.
TEST(Probes, VisualAttentionScaleMultipliesTheImageWeight) {
  Fixture f;
  auto run = [&](double s) { return probed_run(f, 4, [&](GenerationRequest& r) { r.visual_attention_scale = s; }); };
  auto [r1, g1] = run(1.0);
  for (double s : {4.0, 0.25}) {
    auto [rs, gs] = run(s);
    ASSERT_EQ(rs->tokens().size(), 4u);
    EXPECT_EQ(gs.tokens[0][0], g1.tokens[0][0]);  // the prefill's token
    EXPECT_EQ(rs->tokens()[0].mass, r1->tokens()[0].mass);
    const auto& a = r1->tokens()[1].mass_heads[0];
    const auto& b = rs->tokens()[1].mass_heads[0];
    ASSERT_EQ(a.size(), b.size());
    for (size_t h = 0; h < a.size(); ++h) {
      const double m = a[h];
      EXPECT_NEAR(b[h], s * m / (s * m + 1 - m), 1e-5) << "scale " << s << " head " << h;
      EXPECT_GT(std::abs(b[h] - m), 1e-4) << "scale " << s << " head " << h;  // a real change
    }
  }
  auto req = f.request(2);
  for (double bad : {0.0, -1.0, std::nan("")}) {
    req.visual_attention_scale = bad;
    EXPECT_THROW(generate(f.m, req), Error) << bad;
  }
  req.visual_attention_scale = 2.0;
  req.vismem.enabled = true;
  try {
    generate(f.m, req);
    ADD_FAILURE() << "VisMem with a visual scale accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exclude"), std::string::npos) << e.what();
  }
}

// Greedy generation with an attention option (set on the request) against its training side: the
// logits of every step equal those of one uncached forward over prompt + answer that `decorate`
// gives the option's mask or bias (prompt length P). Returns the per-step logits.
static std::vector<torch::Tensor> expect_steps_equal_the_forward(
    Fixture& f, int64_t n, const std::function<void(GenerationRequest&)>& set,
    const std::function<void(ForwardInput&, int64_t P)>& decorate) {
  auto req = f.request(n);
  set(req);
  std::vector<torch::Tensor> steps;  // [V] per generated token
  req.after_forward = [&](const ForwardOutput& o, bool) { steps.push_back(o.logits.select(1, 0)[0].clone()); };
  auto res = generate(f.m, req);
  EXPECT_EQ((int64_t)steps.size(), n);
  const int64_t P = (int64_t)f.ids.size();
  std::vector<int64_t> seq = f.ids;
  seq.insert(seq.end(), res.tokens[0].begin(), res.tokens[0].end() - 1);
  torch::NoGradGuard ng;
  ForwardInput in;
  in.input_ids = torch::tensor(seq, torch::kLong).view({1, (int64_t)seq.size()});
  in.pixel_values = f.pix;
  in.grids = f.grids;
  in.all_logits = true;
  decorate(in, P);
  auto full = f.m->forward(in, nullptr, {}).logits[0];  // [S, V]
  for (int64_t t = 0; t < (int64_t)steps.size(); ++t)
    EXPECT_LT((steps[t] - full[P - 1 + t]).abs().max().item<float>(), 1e-4f) << "step " << t;
  return steps;
}

// The answer-history window in generation (--history-window N) is the training mask, and it differs
// from the unwindowed run's steps exactly past the window.
TEST(Probes, HistoryWindowGenerationMatchesTheTrainingMask) {
  Fixture f;
  const int64_t W = 3, n = 10;
  auto lw = expect_steps_equal_the_forward(
      f, n, [&](GenerationRequest& r) { r.history_window = W; },
      [&](ForwardInput& in, int64_t P) { in.key_allowed = history_window_mask(torch::tensor({P}, torch::kLong), in.input_ids.size(1), W); });
  auto l0 = expect_steps_equal_the_forward(f, n, [](GenerationRequest&) {}, [](ForwardInput&, int64_t) {});
  ASSERT_EQ(lw.size(), l0.size());
  // The first W + 1 steps see every generated token either way; later ones do not.
  for (int64_t t = 0; t <= W + 1; ++t) EXPECT_LT((lw[t] - l0[t]).abs().max().item<float>(), 1e-5f) << "step " << t;
  bool differs = false;
  for (int64_t t = W + 2; t < n; ++t)
    if ((lw[t] - l0[t]).abs().max().item<float>() > 1e-4f) differs = true;
  EXPECT_TRUE(differs) << "the window changed nothing";
  auto req = f.request(2);
  req.history_window = -1;
  EXPECT_THROW(generate(f.m, req), Error);
  req.history_window = 4;
  req.vismem.enabled = true;
  EXPECT_THROW(generate(f.m, req), Error);
}

// The length-matched restore in generation (--visual-restore K) is visual_restore_bias, the training
// side; the bias is 0 on text keys and for the prompt's queries, K log((i + 1) / P) on image keys after.
// For K < 0 too (the image fading faster than the answer's length makes it).
TEST(Probes, VisualRestoreGenerationMatchesTheTrainingBias) {
  for (const double K : {1.5, -2.0}) {
    Fixture f;
    torch::Tensor bias;
    expect_steps_equal_the_forward(
        f, 8, [&](GenerationRequest& r) { r.visual_attention_restore = K; },
        [&](ForwardInput& in, int64_t P) {
          auto image_keys = in.input_ids == f.cfg.image_token_id;
          in.key_bias = bias = visual_restore_bias(image_keys, torch::tensor({P}, torch::kLong), K);
        });
    const int64_t P = (int64_t)f.ids.size(), S = bias.size(1);
    int64_t img = -1;
    for (int64_t i = 0; i < P && img < 0; ++i)
      if (f.ids[i] == f.cfg.image_token_id) img = i;
    ASSERT_GE(img, 0);
    auto b = bias[0];
    EXPECT_EQ(b.narrow(0, 0, P).abs().max().item<float>(), 0.f);
    EXPECT_NEAR(b[S - 1][img].item<float>(), K * std::log(double(S) / P), 1e-5);
    EXPECT_EQ(b[S - 1][P].item<float>(), 0.f);
  }
}
