// Decode speed with the probes off vs all on (visual mass per head, sinks, PVM, heatmap, logit
// lens), and with the PVM branch off (its cost), same model and prompt with one image.
//   pvm-bench-probes [--preset qwen3-vl-tiny | --config config.json] [--grid 16] [--text 64] [--decode 32] [--pvm-layers 1,2]
//                    [--dtype f32] [--device cpu] [--threads N] [--repeats 3] [--probes mass,per-head,sinks,pvm,heatmap,lens]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "engine/base/cli_args.h"
#include "engine/base/config.h"
#include "engine/base/error.h"
#include "engine/device.h"
#include "engine/generate.h"
#include "engine/loader.h"
#include "engine/probes.h"
#include "engine/pvm.h"

int main(int argc, char** argv) try {
  pvm::cli::Args a(std::vector<std::string>(argv + 1, argv + argc),
                   {"--preset", "--config", "--grid", "--text", "--decode", "--pvm-layers", "--dtype", "--device", "--threads",
                    "--repeats", "--probes"});
  auto dev = pvm::parse_device(a.get("--device", "cpu"));
  auto dtype = pvm::parse_dtype(a.get("--dtype", "auto"), dev);
  if (a.has("--threads")) torch::set_num_threads(a.get_int("--threads", 1));
  auto c = a.has("--config") ? pvm::load_config(a.get("--config")) : pvm::preset_config(a.get("--preset", "qwen3-vl-tiny"));
  auto m = pvm::make_random_model(c, 0, dtype, dev);
  {
    pvm::TextConfig f = c.text;
    f.pvm_layers.clear();
    std::stringstream ss(a.get("--pvm-layers", "1"));
    for (std::string t; std::getline(ss, t, ',');) f.pvm_layers.push_back(std::stoll(t));
    f.pvm_hidden_size = std::min<int64_t>(f.pvm_hidden_size, c.text.hidden_size / 2);
    pvm::attach_pvm(*m, f, 1);
    torch::NoGradGuard ng;
    for (auto& p : m->named_parameters())
      if (p.key().find("gate_alpha") != std::string::npos) p.value().fill_(0.3);
  }
  const int64_t grid = a.get_int("--grid", 16), n_text = a.get_int("--text", 64), n_decode = a.get_int("--decode", 32);
  const int64_t repeats = std::max<long long>(1, a.get_int("--repeats", 3));
  if (grid < 2 || grid % 2) throw pvm::Error("--grid must be an even number >= 2");
  const auto& v = c.vision;
  const int64_t merge = v.spatial_merge_size, nv = grid * grid / (merge * merge);
  pvm::GenerationRequest req;
  // Plain text ids below the special tokens (small vocabularies, like the default model's, have ~500).
  const int64_t text_ids = std::max<int64_t>(16, std::min<int64_t>(6000, c.vision_start_token_id - 8));
  auto text_id = [&](int64_t i) { return 8 + (i * 7919) % (text_ids - 8); };
  req.prompt_ids = {text_id(0), text_id(1), c.vision_start_token_id};
  for (int64_t i = 0; i < nv; ++i) req.prompt_ids.push_back(c.image_token_id);
  req.prompt_ids.push_back(c.vision_end_token_id);
  for (int64_t i = 0; i < n_text; ++i) req.prompt_ids.push_back(text_id(i + 2));
  req.grids = {{1, grid, grid}};
  auto gen = at::detail::createCPUGenerator(1);
  req.pixel_values = at::rand({grid * grid, v.in_channels * v.temporal_patch_size * v.patch_size * v.patch_size}, gen,
                              torch::kFloat) * 2 - 1;
  req.max_new_tokens = n_decode;
  req.stop_ids = {-1};
  auto vis = pvm::visual_positions(req.prompt_ids, c.image_token_id);

  // One decode run, tokens/s; `share` gets the fraction of the decode time spent inside the probe
  // hooks (a direct measure of their cost, much less noisy on a shared VM than a ratio of speeds).
  auto once = [&](bool probes, pvm::ProbeOptions opt, bool pvm_on, double* share) {
    auto q = req;
    q.pvm = pvm_on;
    pvm::ProbeRecorder rec(m, vis, opt, req.grids, merge);
    if (probes) rec.attach(q);
    auto res = pvm::generate(m, q);
    if (probes && opt.any() && (int64_t)rec.tokens().size() != n_decode) throw pvm::Error("probes recorded too few tokens");
    *share = res.decode_ms > 0 ? rec.decode_probe_seconds() * 1000.0 / res.decode_ms : 0;
    return res.decode_tokens_per_s();
  };
  // The modes are interleaved within each repeat (off, default, all, off, ...) so that drift in a
  // shared machine's speed hits them alike; one warm-up round first. Reported: best of `repeats` per
  // mode, and the median over repeats of the paired ratio mode/off (robust to a noisy neighbour).
  struct Mode {
    bool probes;
    pvm::ProbeOptions opt;
    bool pvm = true;  // the PVM branch runs (false: the backbone alone, the cost of PVM)
  };
  std::vector<Mode> modes;
  std::vector<std::vector<double>> runs, shares;  // [mode][repeat] tokens/s, probe share of decode time
  auto measure_all = [&]() {
    runs.assign(modes.size(), {});
    shares.assign(modes.size(), {});
    for (int64_t r = 0; r < repeats + 1; ++r)
      for (size_t i = 0; i < modes.size(); ++i) {
        double sh = 0, v = once(modes[i].probes, modes[i].opt, modes[i].pvm, &sh);
        if (r > 0) runs[i].push_back(v), shares[i].push_back(sh);
      }
    std::vector<double> best;
    for (auto& r : runs) best.push_back(*std::max_element(r.begin(), r.end()));
    return best;
  };
  auto median = [](std::vector<double> q) {
    std::sort(q.begin(), q.end());
    return q.size() % 2 ? q[q.size() / 2] : 0.5 * (q[q.size() / 2 - 1] + q[q.size() / 2]);
  };
  auto median_ratio = [&](size_t i) {
    std::vector<double> q;
    for (size_t r = 0; r < runs[i].size(); ++r) q.push_back(runs[i][r] / runs[0][r]);
    return median(q);
  };
  std::printf("%s (%lld layers, vocab %lld), %s %s, %d threads; prompt %zu tokens (%lld visual), decode %lld\n",
              (a.has("--config") ? a.get("--config") : "preset " + a.get("--preset", "qwen3-vl-tiny")).c_str(), (long long)c.text.num_hidden_layers,
              (long long)c.text.vocab_size, dev.str().c_str(), pvm::dtype_name(dtype).c_str(), torch::get_num_threads(),
              req.prompt_ids.size(), (long long)nv, (long long)n_decode);
  pvm::ProbeOptions all{true, true, true, true, true, true};
  modes = {{false, {}}, {true, pvm::ProbeOptions{}}, {true, all}, {false, {}, false}};
  if (a.has("--probes")) {  // a custom set, e.g. --probes lens or --probes heatmap,per-head
    pvm::ProbeOptions o{false, false, false, false, false, false};
    std::stringstream ps(a.get("--probes"));
    for (std::string t; std::getline(ps, t, ',');) {
      if (t == "mass") o.visual_mass = true;
      else if (t == "per-head") o.per_head = true;
      else if (t == "sinks") o.sink_excluded = true;
      else if (t == "pvm") o.pvm = true;
      else if (t == "heatmap") o.heatmap = true;
      else if (t == "lens") o.logit_lens = true;
      else throw pvm::Error("--probes: unknown probe '" + t + "' (mass, per-head, sinks, pvm, heatmap, lens)");
    }
    modes.push_back({true, o, true});
  }
  auto best = measure_all();
  double off = best[0], def = best[1], on = best[2];
  std::printf("decode tokens/s: probes off %.2f, default (mass, sinks, PVM) %.2f, all on (+ per head, heatmap, logit lens) %.2f\n",
              off, def, on);
  if (modes.size() > 4)
    std::printf("custom (%s) %.2f tokens/s, ratio %.3f (best), %.3f (median of paired)\n", a.get("--probes").c_str(), best[4],
                best[4] / off, median_ratio(4));
  // PVM's cost: decode time with the branch over decode time without it (probes off both).
  std::printf("PVM branch: backbone alone %.2f tokens/s; decode time with PVM / without: %.3f (best), %.3f (median of paired)\n",
              best[3], best[3] / off, median_ratio(3));
  std::printf("ratio default/off %.3f, all on/off %.3f (best of %lld)\n", def / off, on / off, (long long)repeats);
  std::printf("median of %lld paired ratios: default/off %.3f, all on/off %.3f\n", (long long)repeats, median_ratio(1),
              median_ratio(2));
  std::printf("time inside the probe hooks, median share of decode time: default %.1f%%, all on %.1f%%", 100 * median(shares[1]),
              100 * median(shares[2]));
  if (modes.size() > 4) std::printf(", custom %.1f%%", 100 * median(shares[4]));
  std::printf("\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "pvm-bench-probes: error: %s\n", e.what());
  return 1;
}
