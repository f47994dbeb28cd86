#include "app/studio/options.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"

namespace pvm::studio {

const char* usage_text() {
  return "usage: pvm-studio [--model DIR] [--pvm ADAPTER] [--image FILE] [--open FOLDER] [options]\n"
         "\n"
         "  --model DIR            checkpoint folder to load (default: assets/default-model, else a random\n"
         "                         qwen3-vl-tiny with a note in the status line)\n"
         "  --pvm ADAPTER          PVM adapter folder to load on top of the model\n"
         "  --vismem ADAPTER       VisMem adapter folder: Compare and Dilution add a third arm (PVM off +\n"
         "                         latent memories; a bad adapter is an error in the log, the model stays)\n"
         "  --vismem-invoke M      how the VisMem arm invokes memories: model (its own start tokens, default)\n"
         "                         or separators (after a separator with probability --vismem-p, default 1)\n"
         "  --vismem-max N         memories per answer at most (default 4)\n"
         "  --image FILE           image to open (default: a random scene, or assets/samples/shapes.png)\n"
         "  --open FOLDER          restore a saved session (File > Save session)\n"
         "  --size WxH             window size (default 1600x1000)\n"
         "  --font-size PX         UI font size (default 15 x monitor scale)\n"
         "  --ini FILE             layout file to use instead of ~/.config/pvm-studio/imgui.ini\n"
         "  --no-ini               do not read or write a layout file (the default when headless)\n"
         "  --model-threads N      intra-op threads of the model worker (default: as the CLI, 1 for a small\n"
         "                         decoder, every core for a wide one, which the UI then draws at 10 fps)\n"
         "  --verbose              echo the log to stderr\n"
         "\n"
         "headless:\n"
         "  --screenshot OUT.png   render --frames frames, save the window as PNG, exit\n"
         "  --frames N             frames before the screenshot (default 10; with --demo: after the demo)\n"
         "  --demo                 scripted demo: load the model, new scene, generate --demo-tokens tokens\n"
         "                         both ways, then screenshot (exit 1 if it fails or takes over 110 s)\n"
         "  --demo-tokens N        tokens per side in the demo (default 64)\n"
         "  --demo-no-stop         the demo generates past the answer's end: every side is --demo-tokens long\n"
         "  --demo-sides LIST      the answers the demo generates: baseline,pvm,vismem (default all)\n"
         "  --save-session DIR     with --screenshot: also save the session (image, prompt, answers, traces, plots)\n"
         "  --export-plot BASE     with --screenshot: also save the dilution plot as BASE.png and BASE.csv\n"
         "  --hover X,Y            simulate the mouse at fractions of the window (for screenshots)\n"
         "  --focus VIEW[,VIEW]    bring these views' tabs to the front (e.g. \"Dilution map,Gaze replay\")\n"
         "  --per-head             the demo records per-head probes (the Dilution map's layer x head map)\n"
         "  --map-mode M           Dilution map shows baseline | pvm | diff (default diff)\n"
         "  --export-map BASE      with --screenshot: also save the dilution map as BASE.png, BASE.json and\n"
         "                         BASE_map.csv / BASE_heads.csv\n"
         "  --replay-export DIR    with --screenshot: first export the gaze replay of the answer as PNG frames\n"
         "                         and DIR/replay.gif (--replay-stride N: every N-th token)\n"
         "  --replay-speed X       gaze replay speed in tokens/s (also the GIF's frame time)\n"
         "  --replay-play          start the gaze replay once there are tokens\n"
         "  --batch-scenes N       Batch dilution on N new scenes once the model is loaded (--batch-seed S,\n"
         "                         --batch-tokens N (32), --batch-out DIR), screenshot when it ends\n"
         "  --batch-images PATH    Batch dilution on a folder (or file) of images instead\n"
         "  --batch-cancel-after K press Cancel once K answers are in\n"
         "  --export-batch BASE    with --screenshot: the batch plot as BASE.png/.csv and the fits as BASE_fits.csv\n"
         "  --train-launch         launch the Training view's form once the model is loaded (scenes data made\n"
         "                         for the run: --train-scenes N); --train-set KEY=VALUE sets form fields\n"
         "  --train-compare        after the run: Load adapter & compare (generates both sides)\n"
         "  --select-model DIR     pick DIR in the Model view: its memory plan, or why it cannot load\n"
         "  --load-selected        then load it (--load-cancel-at F: press Cancel at that share of the bytes)\n"
         "  --bench-frames N       load a synthetic 16k-token trace (36 layers, both sides), time N frames,\n"
         "                         print mean/p95 frame time, exit\n"
         "  --bench-pan            pan the dilution plot every bench frame (re-decimate each frame)\n"
         "  --bench-generate N     generate N tokens per side as --demo does (rendering as while streaming, the CLI's\n"
         "                         --probe set), then run 'pvm generate --probe' on the same model, image and\n"
         "                         prompt; print both tokens/s, their ratio and the frame times, exit\n"
         "  --bench-cli PATH       the pvm binary for --bench-generate (default: beside pvm-studio; 'none': no\n"
         "                         CLI run, only the studio's tokens/s and frame times)\n"
         "  --bench-json FILE      also write the --bench-generate figures as JSON\n"

         "  --vector-plots         draw plot lines as ImDrawList polylines (slow on software GL)\n"
         "\n"
         "Without a display: xvfb-run -s \"-screen 0 1920x1080x24\" pvm-studio --screenshot out.png --demo\n"
         "Headless model work lives in the 'pvm' CLI.\n";
}

StudioOptions parse_options(const std::vector<std::string>& argv) {
  cli::Args a(argv, {"--screenshot", "--frames", "--size", "--bench-frames", "--hover", "--font-size", "--export-plot", "--ini",
                     "--model", "--pvm", "--vismem", "--vismem-invoke", "--vismem-p", "--vismem-max", "--image", "--open", "--save-session", "--demo-tokens",
                     "--model-threads", "--demo-sides", "--bench-generate", "--bench-cli", "--bench-json", "--focus", "--map-mode",
                     "--export-map", "--replay-export", "--replay-stride", "--replay-speed", "--batch-scenes", "--batch-images",
                     "--batch-seed", "--batch-tokens", "--batch-out", "--batch-cancel-after", "--export-batch", "--train-set",
                     "--train-scenes", "--select-model", "--load-cancel-at"},
              {"--demo", "--demo-no-stop", "--bench-pan", "--vector-plots", "--no-ini", "--verbose", "--help", "--per-head", "--replay-play",
               "--train-launch", "--train-compare", "--load-selected"});
  StudioOptions o;
  for (const std::string& p : a.positional())
    if (p == "-h") o.help = true;
    else throw Error("unexpected argument '" + p + "'");
  o.help = o.help || a.has("--help");
  o.screenshot = a.get("--screenshot");
  if (a.has("--screenshot") && o.screenshot.empty()) throw Error("--screenshot needs a file name");
  o.frames = int(a.get_int("--frames", 10, 1, 100000));
  if (a.has("--size")) {
    int w = 0, h = 0;
    char tail = 0;
    if (std::sscanf(a.get("--size").c_str(), "%dx%d%c", &w, &h, &tail) != 2 || w < 200 || h < 150 || w > 16384 ||
        h > 16384)
      throw Error("--size: expected WxH with W >= 200 and H >= 150, got '" + a.get("--size") + "'");
    o.width = w, o.height = h, o.size_given = true;
  }
  o.demo = a.has("--demo");
  o.model = a.get("--model");
  o.pvm = a.get("--pvm");
  o.vismem = a.get("--vismem");
  if (a.has("--vismem") && o.vismem.empty()) throw Error("--vismem needs an adapter folder");
  o.vismem_invoke = a.get("--vismem-invoke", "model");
  if (o.vismem_invoke != "model" && o.vismem_invoke != "separators")
    throw Error("option --vismem-invoke: must be model or separators, got '" + o.vismem_invoke + "'");
  o.vismem_p = a.get_double("--vismem-p", 1.0);
  if (!(o.vismem_p >= 0 && o.vismem_p <= 1)) throw Error("option --vismem-p: must be in [0, 1], got '" + a.get("--vismem-p") + "'");
  o.vismem_max = int(a.get_int("--vismem-max", 4, 0, 1 << 20));
  if ((a.has("--vismem-invoke") || a.has("--vismem-p") || a.has("--vismem-max")) && o.vismem.empty())
    throw Error("--vismem-invoke, --vismem-p and --vismem-max need --vismem ADAPTER");
  o.image = a.get("--image");
  o.open = a.get("--open");
  o.save_session = a.get("--save-session");
  if (!o.save_session.empty() && o.screenshot.empty()) throw Error("--save-session needs --screenshot (interactive: File > Save session)");
  o.demo_tokens = int(a.get_int("--demo-tokens", 64, 1, 16384));
  o.demo_no_stop = a.has("--demo-no-stop");
  if (o.demo_no_stop && !o.demo) throw Error("--demo-no-stop needs --demo");
  if (!o.open.empty() && o.demo) throw Error("--open and --demo exclude each other");
  if (a.has("--demo-sides")) {
    const std::string f = a.get("--demo-sides");
    o.demo_baseline = o.demo_pvm = o.demo_vismem = false;
    for (size_t i = 0; i <= f.size();) {
      const size_t j = std::min(f.find(',', i), f.size());
      const std::string w = f.substr(i, j - i);
      if (w == "baseline") o.demo_baseline = true;
      else if (w == "pvm") o.demo_pvm = true;
      else if (w == "vismem") o.demo_vismem = true;
      else throw Error("--demo-sides: expected a comma list of baseline, pvm, vismem, got '" + f + "'");
      i = j + 1;
    }
  }
  o.bench_frames = int(a.get_int("--bench-frames", 0, 0, 100000));
  o.bench_pan = a.has("--bench-pan");
  o.bench_generate = int(a.get_int("--bench-generate", 0, 0, 16384));  // tokens per side
  o.bench_cli = a.get("--bench-cli");
  o.bench_json = a.get("--bench-json");
  if ((a.has("--bench-cli") || a.has("--bench-json")) && o.bench_generate == 0)
    throw Error("--bench-cli and --bench-json need --bench-generate");
  if (o.bench_generate > 0) {
    if (o.bench_frames > 0 || !o.open.empty()) throw Error("--bench-generate excludes --bench-frames and --open");
    o.demo = true, o.demo_tokens = o.bench_generate;
    o.demo_timeout_s = 4 * 3600;  // a 2B-shaped model takes a while for thousands of tokens
  }
  o.model_threads = int(a.get_int("--model-threads", 0, 0, 1024));  // 0 = automatic
  if (a.has("--hover")) {
    char tail = 0;
    if (std::sscanf(a.get("--hover").c_str(), "%f,%f%c", &o.hover_x, &o.hover_y, &tail) != 2 || o.hover_x < 0 ||
        o.hover_x > 1 || o.hover_y < 0 || o.hover_y > 1)
      throw Error("--hover: expected X,Y fractions in [0,1], got '" + a.get("--hover") + "'");
    o.hover = true;
  }
  o.font_size = float(a.get_double("--font-size", 0));
  if (o.font_size != 0 && (o.font_size < 8 || o.font_size > 48)) throw Error("--font-size must be in 8..48");
  o.vector_plots = a.has("--vector-plots");
  o.export_plot = a.get("--export-plot");
  if (!o.export_plot.empty() && o.screenshot.empty()) throw Error("--export-plot needs --screenshot");
  if (!o.export_plot.empty() && o.frames < 3) throw Error("--export-plot needs --frames 3 or more");
  o.no_ini = a.has("--no-ini");
  o.ini = a.get("--ini");
  if (!o.ini.empty() && o.no_ini) throw Error("--ini and --no-ini exclude each other");
  // ImGui opens the layout file itself (fopen): a FIFO would block the first frame forever.
  if (!o.ini.empty() && path_exists(o.ini) && !is_regular_file(o.ini))
    throw Error("--ini " + o.ini + ": is not a regular file (a layout file, or a new name, expected)");
  o.verbose = a.has("--verbose");
  if (a.has("--focus")) {
    const std::string f = a.get("--focus");
    for (size_t i = 0; i <= f.size();) {
      const size_t j = std::min(f.find(',', i), f.size());
      if (j > i) o.focus.push_back(f.substr(i, j - i));
      i = j + 1;
    }
    if (o.focus.empty()) throw Error("--focus needs view names (e.g. \"Dilution map\")");
  }
  if (a.has("--demo-sides") && !o.demo) throw Error("--demo-sides needs --demo or --bench-generate");
  o.per_head = a.has("--per-head");
  if (a.has("--map-mode")) {
    const std::string m = a.get("--map-mode");
    o.map_mode = m == "baseline" ? 0 : m == "pvm" ? 1 : m == "diff" ? 2 : -2;
    if (o.map_mode == -2) throw Error("--map-mode: expected baseline, pvm or diff, got '" + m + "'");
  }
  o.export_map = a.get("--export-map");
  if (!o.export_map.empty() && o.screenshot.empty()) throw Error("--export-map needs --screenshot");
  o.replay_export = a.get("--replay-export");
  if (!o.replay_export.empty() && o.screenshot.empty()) throw Error("--replay-export needs --screenshot");
  o.replay_stride = int(a.get_int("--replay-stride", 1, 1, 100000));
  o.replay_speed = float(a.get_double("--replay-speed", 0));
  if (a.has("--replay-speed") && (o.replay_speed < 0.25f || o.replay_speed > 120))
    throw Error("--replay-speed must be in 0.25..120 tokens/s");
  o.replay_play = a.has("--replay-play");
  o.batch_scenes = int(a.get_int("--batch-scenes", 0, 0, 10000));
  o.batch_images = a.get("--batch-images");
  if (o.batch_scenes > 0 && !o.batch_images.empty()) throw Error("--batch-scenes and --batch-images exclude each other");
  o.batch_seed = a.get_int("--batch-seed", 0, 0, INT64_MAX);
  o.batch_tokens = int(a.get_int("--batch-tokens", 32, 2, 16384));
  o.batch_out = a.get("--batch-out");
  o.batch_cancel_after = int(a.get_int("--batch-cancel-after", 0, 0, 1000000));
  o.export_batch = a.get("--export-batch");
  if (!o.export_batch.empty() && o.screenshot.empty()) throw Error("--export-batch needs --screenshot");
  const bool batch_opts = a.has("--batch-seed") || a.has("--batch-tokens") || a.has("--batch-out") ||
                          a.has("--batch-cancel-after") || a.has("--export-batch");
  if (batch_opts && !o.batch()) throw Error("--batch-seed, --batch-tokens, --batch-out, --batch-cancel-after and --export-batch need --batch-scenes or --batch-images");
  o.train_launch = a.has("--train-launch");
  o.train_set = a.all("--train-set");
  for (const std::string& kv : o.train_set)
    if (kv.find('=') == std::string::npos || kv.front() == '=') throw Error("--train-set: expected KEY=VALUE, got '" + kv + "'");
  o.train_scenes = int(a.get_int("--train-scenes", 0, 0, 1000000));
  o.train_compare = a.has("--train-compare");
  if ((!o.train_set.empty() || a.has("--train-scenes") || o.train_compare) && !o.train_launch)
    throw Error("--train-set, --train-scenes and --train-compare need --train-launch");
  o.select_model = a.get("--select-model");
  o.load_selected = a.has("--load-selected");
  o.load_cancel_at = a.get_double("--load-cancel-at", -1);
  if (a.has("--load-cancel-at") && !(o.load_cancel_at >= 0 && o.load_cancel_at < 1))
    throw Error("--load-cancel-at must be in [0, 1)");
  if ((o.load_selected || a.has("--load-cancel-at")) && o.select_model.empty())
    throw Error("--load-selected and --load-cancel-at need --select-model DIR");
  if (int(o.batch()) + int(o.train_launch) + int(!o.select_model.empty()) + int(o.demo) > 1)
    throw Error("--demo, --batch-*, --train-launch and --select-model exclude each other");
  if (o.scripted() && o.screenshot.empty()) throw Error("--batch-*, --train-launch and --select-model are scripted runs: they need --screenshot");
  if (o.train_launch) o.demo_timeout_s = 600;
  return o;
}

}  // namespace pvm::studio
