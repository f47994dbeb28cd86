// pvm train sft|grpo|estimate: the trainer (engine/train.h) with a one-line progress display.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/config.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/memory_estimate.h"
#include "engine/train.h"

namespace {

std::string fmt_time(double s) {
  if (!(s >= 0) || std::isinf(s)) return "?";
  char b[32];
  long t = (long)std::llround(s);
  if (t >= 3600) std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  return b;
}

// Base model config plus the PVM blocks the run adds (for the estimate).
pvm::ModelConfig model_config_for(const pvm::train::TrainConfig& c) {
  auto mc = pvm::load_config(pvm::join_path(c.model, "config.json"));
  if (!c.adapter.empty()) {
    // The adapter may be given as its folder or as its adapter.safetensors (as load_pvm_adapter takes it).
    auto path = pvm::join_path(pvm::is_regular_file(c.adapter) ? pvm::parent_dir(c.adapter) : c.adapter, "adapter_config.json");
    auto j = nlohmann::json::parse(pvm::read_file_to_string(path, 1 << 20), nullptr, false);
    if (j.is_object() && j.contains("pvm_layers") && j["pvm_layers"].is_array()) {
      // exact types, then the same validation as a config.json (bounds, layer range)
      mc.text.pvm_layers.clear();
      for (auto& e : j["pvm_layers"]) {
        if (!e.is_number_integer()) throw pvm::file_error(path, "pvm_layers must be a list of integers");
        mc.text.pvm_layers.push_back(e.get<int64_t>());
      }
      if (j.contains("pvm_hidden_size")) {
        if (!j["pvm_hidden_size"].is_number_integer()) throw pvm::file_error(path, "pvm_hidden_size must be an integer");
        mc.text.pvm_hidden_size = j["pvm_hidden_size"].get<int64_t>();
      }
      mc.validate(path);
    }
  }
  return mc;
}

int run(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv, {"--config", "--set", "--resume", "--out", "--progress-every", "--stop-after"}, {"--force", "--no-progress"});
  const auto& pos = a.positional();
  if (pos.size() != 1 || (pos[0] != "sft" && pos[0] != "grpo" && pos[0] != "vismem" && pos[0] != "estimate"))
    throw pvm::Error("expected one of: pvm train sft|grpo|vismem|estimate --config FILE.json [--set key=value ...] [--resume RUN_DIR]");
  const std::string sub = pos[0];
  // Integer options first: a bad one fails before the config and model are read.
  const bool tty = isatty(2);
  const long every = a.get_int("--progress-every", tty ? 1 : 10, 1, INT32_MAX);
  const int64_t stop_after = a.get_int("--stop-after", -1, 1, INT64_MAX);
  std::string config = a.get("--config");
  const std::string resume = a.get("--resume");
  // Resuming without --config continues with the run's own resolved config.
  if (config.empty() && !resume.empty()) config = pvm::join_path(resume, "config.json");
  if (config.empty()) throw pvm::Error("missing --config FILE.json");
  auto sets = a.all("--set");
  if (a.has("--out")) sets.push_back("out=" + a.get("--out"));
  auto cfg = pvm::train::load_train_config(config, sets, sub == "estimate" ? "" : sub);

  const char* rank_env = std::getenv("RANK");
  const bool main_rank = !rank_env || std::string(rank_env) == "0";
  auto est = pvm::train::estimate_memory(cfg, model_config_for(cfg));
  if (sub == "estimate") {
    std::printf("%s\n", est.to_string().c_str());
    return 0;
  }
  if (main_rank) std::fprintf(stderr, "%s\n", est.to_string().c_str());
  if (!est.fits() && !a.has("--force"))
    throw pvm::Error("the run needs about " + std::to_string(est.total >> 20) + " MiB but " + cfg.device + " has " +
                     std::to_string(est.available >> 20) +
                     " MiB available; lower batch_size / max_length, use grad_accum or grad_checkpointing "
                     "(or pass --force)");

  pvm::train::RunOptions o;
  o.resume_dir = resume;
  o.stop_after = stop_after;
  if (main_rank && !a.has("--no-progress"))
    o.on_step = [&](const nlohmann::json& m) {
      if (m.contains("eval_loss")) {
        std::fprintf(stderr, "%s[eval] step %lld  eval_loss %.4f\n", tty ? "\r\033[K" : "", (long long)m["step"].get<int64_t>(),
                     m["eval_loss"].get<double>());
        return;
      }
      const int64_t step = m["step"], total = m["total_steps"];
      if (!tty && step % every != 0 && step != total && step != 1) return;
      char what[64];
      if (m.contains("penalised_reward_mean"))  // VisMem stage 2
        std::snprintf(what, sizeof what, "reward %.3f (penalised %.3f)", m["reward_mean"].get<double>(),
                      m["penalised_reward_mean"].get<double>());
      else if (m.contains("reward_mean"))
        std::snprintf(what, sizeof what, "reward %.3f", m["reward_mean"].get<double>());
      else
        std::snprintf(what, sizeof what, "loss %.4f", m["loss"].get<double>());
      std::fprintf(stderr, "%sstep %lld/%lld  %s  lr %.2e  %.0f tok/s  ETA %s%s", tty ? "\r\033[K" : "", (long long)step,
                   (long long)total, what, m["lr"].get<double>(), m["tokens_per_s"].get<double>(),
                   fmt_time(m["eta_s"].get<double>()).c_str(), tty ? "" : "\n");
      std::fflush(stderr);
    };
  // The last line says what the run reports, not what the files suggest: a run folder moved while
  // training has no final/ where it started.
  pvm::train::RunOutcome out;
  int rc = pvm::train::run(cfg, o, &out);
  if (main_rank) {
    if (tty) std::fprintf(stderr, "\n");
    const std::string moved = out.moved_from.empty() ? "" : " (moved from " + out.moved_from + " while training)";
    if (rc != 0)
      std::fprintf(stderr, "pvm train: failed\n");
    else if (out.state == "finished")
      std::fprintf(stderr, "pvm train: done, %lld steps; run folder %s%s\n", (long long)out.total, out.run_dir.c_str(), moved.c_str());
    else
      std::fprintf(stderr, "pvm train: stopped at step %lld of %lld; checkpoint saved (resume with --resume %s)%s\n",
                   (long long)out.step, (long long)out.total, out.run_dir.c_str(), moved.c_str());
  }
  return rc;
}

}  // namespace

PVM_COMMAND("train", "train PVM blocks or the model (SFT, GRPO), data-parallel with torchrun",
            "sft|grpo|vismem|estimate --config FILE.json [--set key=value ...] [--resume RUN_DIR] [--out RUN_DIR] "
            "[--stop-after N (end after step N of the schedule; resumable)] [--force] [--no-progress] [--progress-every N]",
            run);
