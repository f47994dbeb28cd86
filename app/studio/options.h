// Command line of pvm-studio.
#pragma once
#include <string>
#include <vector>

namespace pvm::studio {

struct StudioOptions {
  std::string screenshot;      // save the window as PNG after `frames` frames and exit
  int frames = 10;
  int width = 1600, height = 1000;
  bool size_given = false;
  std::string model;           // checkpoint folder to load at start ("" = default model)
  std::string pvm;             // PVM adapter folder to load after the model
  std::string vismem;          // VisMem adapter folder to attach after the model (the third arm)
  std::string vismem_invoke = "model";  // how the VisMem arm invokes memories: model | separators
  double vismem_p = 1.0;       // separators: invocation probability
  int vismem_max = 4;          // invocations per answer at most
  std::string image;           // image to open at start
  std::string open;            // session folder to restore
  std::string save_session;    // headless: write the session here before exiting
  bool demo = false;           // scripted: load, new scene, generate 64 tokens both ways
  int demo_tokens = 64;
  bool demo_no_stop = false;   // --demo-no-stop: every side of the demo is demo_tokens long
  // --demo-sides: which answers the demo (and --bench-generate) generates; all by default
  bool demo_baseline = true, demo_pvm = true, demo_vismem = true;
  int demo_timeout_s = 110;
  int bench_frames = 0;        // time this many frames, print mean/p95, exit
  bool bench_pan = false;      // pan every benchmark frame (decimation runs each frame)
  int bench_generate = 0;      // headless: the demo with N tokens per side at 30 fps, then `pvm generate` on the
                               // same model, image and prompt; prints both tokens/s and the frame times
  std::string bench_cli;       // the pvm binary for --bench-generate ("" = the one beside pvm-studio, "none" = no CLI run)
  std::string bench_json;      // --bench-generate figures as JSON
  int model_threads = 0;       // intra-op threads of the model worker (0: cores - 1, at least 1)
  bool hover = false;          // simulated mouse position (fractions of the window), for screenshots
  float hover_x = 0, hover_y = 0;
  float font_size = 0;         // 0: 15 px times the monitor's content scale
  std::string export_plot;     // with --screenshot: also export the dilution plot as BASE.png/.csv
  bool vector_plots = false;   // plot lines as ImDrawList polylines instead of the raster layer
  std::string ini;             // layout file instead of ~/.config/pvm-studio/imgui.ini (used headless too)
  bool no_ini = false;
  std::vector<std::string> focus;  // views whose tabs are brought to the front at start
  bool per_head = false;       // the demo's generation records per-head probes
  int map_mode = -1;           // Dilution map: 0 baseline, 1 PVM, 2 difference (-1: the view's default)
  std::string export_map;      // with --screenshot: also export the dilution map as BASE.png/.json/_map.csv
  std::string replay_export;   // with --screenshot: export the gaze replay (PNG frames + GIF) to this folder first
  int replay_stride = 1;
  float replay_speed = 0;      // tokens/s (0: the view's default)
  bool replay_play = false;    // start the gaze replay playing once there are tokens
  // Batch dilution (scripted): start a batch once the model is loaded, screenshot when it ends.
  int batch_scenes = 0;        // N new scenes
  std::string batch_images;    // or a folder / file of images
  int64_t batch_seed = 0;
  int batch_tokens = 32;
  std::string batch_out;       // the engine's output folder ("" = the view's default)
  int batch_cancel_after = 0;  // Cancel once this many answers are in (0: never)
  std::string export_batch;    // with --screenshot: the batch plot as BASE.png/.csv and BASE_fits.csv
  bool batch() const { return batch_scenes > 0 || !batch_images.empty(); }
  // Training (scripted): launch the Training view's form once the model is loaded.
  bool train_launch = false;
  std::vector<std::string> train_set;  // KEY=VALUE form values (JSON values, else strings)
  int train_scenes = 0;        // the scenes data set's size (0: the form's default)
  bool train_compare = false;  // after the run: "Load adapter & compare"
  // Checkpoints (scripted): pick a folder in the Model view (its memory plan), optionally load it.
  std::string select_model;
  bool load_selected = false;
  double load_cancel_at = -1;  // cancel the load at this fraction of the bytes
  bool scripted() const { return batch() || train_launch || !select_model.empty(); }
  bool verbose = false;        // echo the log to stderr
  bool help = false;
};

// Throws pvm::Error with a one-line message on bad input.
StudioOptions parse_options(const std::vector<std::string>& args);
const char* usage_text();

}  // namespace pvm::studio
