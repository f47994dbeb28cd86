// pvm dilution: visual attention mass vs generated position, baseline (PVM off) vs PVM, with
// c/(t+t0) and power-law fits and PNG plots. The experiment and its analysis are engine/dilution.h;
// this file parses options and reports progress.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/dilution.h"
#include "engine/probes.h"

namespace {

std::atomic<bool> g_cancel{false};
void on_sigint(int) { g_cancel = true; }

int run(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv,
                   {"--model", "--pvm", "--images", "--prompt-preset", "--prompt", "--max-new-tokens", "--out",
                    "--dtype", "--device", "--threads", "--tokenizer", "--sink-k", "--scenes", "--scene-seed", "--objects",
                    "--history-window", "--visual-restore"},
                   {"--stop-at-eos", "--quiet", "--heatmaps", "--logit-lens"});
  pvm::model_dir_or_default(a.get("--model"));  // that error first, as before the options below
  pvm::DilutionOptions o;
  o.out_dir = a.require("--out");
  o.max_new_tokens = a.get_int("--max-new-tokens", 256, 2, 1 << 20);
  const int64_t sink_k = a.get_int("--sink-k", 0, 0, 1 << 20);  // 0 = 1% of the visual tokens
  auto img_args = a.all("--images");
  for (auto& p : a.positional()) img_args.push_back(p);  // --images a.png b.png
  if (a.has("--scenes")) {
    // New scenes instead of image files: written to OUT/images first, then measured like files.
    if (!img_args.empty()) throw pvm::Error("--scenes and --images exclude each other");
    const int64_t count = a.get_int("--scenes", 1, 1, 100000);
    const int64_t seed = a.get_int("--scene-seed", 0, 0, INT64_MAX);
    pvm::scenes::SceneOptions so;
    if (a.has("--objects")) pvm::scenes::parse_objects_option(a.get("--objects"), so);
    o.images = pvm::write_scene_images(o.out_dir + "/images", count, uint64_t(seed), so);
  } else {
    if (a.has("--scene-seed") || a.has("--objects")) throw pvm::Error("--scene-seed and --objects need --scenes N");
    o.images = pvm::collect_images(img_args);
  }
  o.sink_k = (int)sink_k;
  const auto visual = pvm::cli::visual_intervention(a, false);  // --history-window, --visual-restore
  o.history_window = visual.window;
  o.visual_attention_restore = visual.restore;
  const bool quiet = a.has("--quiet");
  o.heatmaps = a.has("--heatmaps");
  o.logit_lens = a.has("--logit-lens");
  o.stop_at_eos = a.has("--stop-at-eos");
  o.prompt = a.has("--prompt") ? a.get("--prompt") : pvm::load_prompt_preset(a.get("--prompt-preset", "blind-painter"));

  auto pipe = pvm::open_pipeline(pvm::cli::open_options(a, quiet));
  const size_t n_runs = pipe.model.model->config().has_pvm() ? 2 : 1;
  std::signal(SIGINT, on_sigint);
  o.cancel = &g_cancel;

  const int64_t total = (int64_t)(n_runs * o.images.size()) * o.max_new_tokens;
  int64_t done_tokens = 0;
  const auto t_start = std::chrono::steady_clock::now();
  auto t_run = t_start;
  o.on_token = [&](const std::string& run_name, size_t ii, int64_t step) {
    ++done_tokens;
    if (step == 0) t_run = std::chrono::steady_clock::now();
    if (quiet || (step + 1) % 16 != 0) return;
    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    double run_el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_run).count();
    double rate = done_tokens / std::max(el, 1e-9);
    std::fprintf(stderr, "\r[%s %zu/%zu] token %lld/%lld  %.1f tokens/s  ETA %.0f s   ", run_name.c_str(), ii + 1,
                 o.images.size(), (long long)step + 1, (long long)o.max_new_tokens, (step + 1) / std::max(run_el, 1e-9),
                 (total - done_tokens) / std::max(rate, 1e-9));
    std::fflush(stderr);
  };
  const pvm::DilutionResult res = pvm::run_dilution(pipe, o);
  if (!quiet) std::fprintf(stderr, "\n");
  if (g_cancel) std::fprintf(stderr, "interrupted: writing what was measured\n");
  if (o.logit_lens) std::printf("%s", res.lens_summary_csv.c_str());
  if (!quiet)
    std::fprintf(stderr, "wrote %s/{mass_%s.csv,fits.csv,mass_vs_position.png,mass_nosink_vs_position.png,mass_loglog.png,mass_by_layer_*.png} (%zu image(s), %lld tokens per run)\n",
                 o.out_dir.c_str(), res.runs.size() > 1 ? "{baseline,pvm}" : "baseline", o.images.size(),
                 (long long)o.max_new_tokens);
  std::printf("%s\n", res.fits_csv.c_str());
  return 0;
}

}  // namespace

PVM_COMMAND("dilution", "visual attention mass vs generated position, baseline vs PVM, with fits and plots",
            "[--model DIR] [--pvm ADAPTER] --images DIR|FILE... | --scenes N [--scene-seed S] [--objects MIN-MAX] --out DIR [--prompt-preset blind-painter | --prompt TEXT] "
            "[--max-new-tokens N] [--sink-k K] [--history-window N] [--visual-restore K] [--stop-at-eos] [--dtype f32|bf16|f16|auto] [--device cpu|cuda|auto] [--threads N] "
            "[--tokenizer FILE] [--heatmaps] [--logit-lens] [--quiet]",
            run);
