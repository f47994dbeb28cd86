// `pvm dilution`, the experiment: generate an answer per image (baseline, and with PVM when the
// model has PVM blocks), record the probes of every token, and write the analysis: per-token mass
// CSVs, per-step means and fits (engine/base/dilution.h), PNG plots, optional heatmaps and logit
// lens. The CLI command (app/cli/cmd_dilution.cpp) only parses options and prints.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/pipeline.h"

namespace pvm {

struct DilutionOptions {
  std::vector<std::string> images;  // image files, one answer each per run
  std::string prompt;
  int64_t max_new_tokens = 256;
  int sink_k = 0;                   // 0 = 1% of the visual tokens (engine/probes.h)
  bool stop_at_eos = false;         // false: every answer is max_new_tokens long
  bool heatmaps = false, logit_lens = false;
  std::string out_dir;
  std::atomic<bool>* cancel = nullptr;
  // Called after every generated token: run ("baseline" | "pvm"), image index, 0-based step.
  std::function<void(const std::string& run, size_t image, int64_t step)> on_token;
};

struct DilutionResult {
  std::vector<std::string> runs;  // "baseline" [, "pvm"]
  std::string fits_csv;           // the text of fits.csv
  std::string lens_summary_csv;   // lens_summary.csv, when logit_lens
};

// Runs the experiment on the loaded model and writes everything under out_dir.
DilutionResult run_dilution(Pipeline& pipe, const DilutionOptions& o);

// Image files of --images arguments: files as given, folders as their image files in name order.
// Throws naming the argument when a folder holds no image or a path does not exist.
std::vector<std::string> collect_images(const std::vector<std::string>& args);

}  // namespace pvm
