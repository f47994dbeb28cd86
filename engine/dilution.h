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

#include "engine/base/scenes.h"
#include "engine/pipeline.h"

namespace pvm {

struct DilutionOptions {
  std::vector<std::string> images;  // image files, one answer each per run
  std::string prompt;
  int64_t max_new_tokens = 256;
  int sink_k = 0;                   // 0 = 1% of the visual tokens (engine/probes.h)
  bool stop_at_eos = false;         // false: every answer is max_new_tokens long
  int64_t history_window = 0;       // generate with the answer-history window (GenerationRequest); 0 = off
  double visual_attention_restore = 0.0;  // generate with the image attention restored (GenerationRequest); 0 = off
  bool heatmaps = false, logit_lens = false;
  std::string out_dir;
  std::atomic<bool>* cancel = nullptr;
  // Called after every generated token: run ("baseline" | "pvm"), image index, 0-based step.
  std::function<void(const std::string& run, size_t image, int64_t step)> on_token;
  // Called after every answer with the visual mass of its tokens: per token [layers] (with and
  // without sink tokens), token i at step i. The studio's batch view is built from these.
  std::function<void(const std::string& run, size_t image, const std::vector<std::vector<float>>& mass,
                     const std::vector<std::vector<float>>& mass_nosink)>
      on_answer;
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

// `count` new scenes (engine/base/scenes.h) as dir/scene_NNN.png, the held-out seeds of `seed`
// (scene i has scene_seed(seed, 1, i), like `pvm eval --task scenes --seed S`): the images of
// `pvm dilution --scenes N --scene-seed S` and of the studio's batch on new scenes. Returns the files.
std::vector<std::string> write_scene_images(const std::string& dir, int64_t count, uint64_t seed,
                                            const scenes::SceneOptions& opt);

}  // namespace pvm
