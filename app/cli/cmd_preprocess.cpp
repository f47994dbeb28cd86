// pvm preprocess: load one image and run the Qwen3-VL image preprocessing, printing the sizes, the
// patch grid and the number of <|image_pad|> tokens the image will take.
#include <sys/stat.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/image.h"
#include "engine/image_write.h"

namespace {

// --config may name the file or a model directory holding preprocessor_config.json.
std::string config_path(const std::string& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return p + "/preprocessor_config.json";
  return p;
}

int run_preprocess(const std::vector<std::string>& argv) {
  pvm::cli::Args args(argv, {"--image", "--config", "--min-pixels", "--max-pixels", "--save-resized"},
                      {"--json", "--no-exif"});
  if (!args.positional().empty()) throw pvm::Error("unexpected argument '" + args.positional()[0] + "'");
  if (args.all("--image").size() > 1) throw pvm::Error("--image: give one image");
  const std::string image_path = args.require("--image");

  pvm::PreprocessorConfig cfg;
  std::string cfg_source = "built-in Qwen3-VL defaults";
  if (args.has("--config")) {
    cfg_source = config_path(args.get("--config"));
    cfg = pvm::PreprocessorConfig::load(cfg_source);
  }
  cfg.min_pixels = args.get_int("--min-pixels", cfg.min_pixels, 1, INT64_MAX);
  cfg.max_pixels = args.get_int("--max-pixels", cfg.max_pixels, 1, INT64_MAX);
  cfg.validate("--min-pixels/--max-pixels");

  pvm::ImageRGB img = pvm::load_image(image_path, !args.has("--no-exif"));
  pvm::ProcessedImage p = pvm::preprocess(img, cfg);
  const bool resized = p.resized_h != p.orig_h || p.resized_w != p.orig_w;
  const char* resizer = resized ? "libtorch-uint8" : "none";
  const double sum = p.pixel_values.sum(torch::kFloat64).item<double>();

  if (args.has("--save-resized")) pvm::write_image(args.get("--save-resized"), pvm::resized_image(img, cfg));

  if (args.has("--json")) {
    nlohmann::json j;
    j["image"] = image_path;
    j["width"] = img.width;
    j["height"] = img.height;
    j["resized_width"] = p.resized_w;
    j["resized_height"] = p.resized_h;
    j["grid_thw"] = {p.grid_t, p.grid_h, p.grid_w};
    j["num_image_tokens"] = p.num_tokens();
    j["pixel_values_shape"] = {p.pixel_values.size(0), p.pixel_values.size(1)};
    j["pixel_values_sum"] = sum;
    j["min_pixels"] = cfg.min_pixels;
    j["max_pixels"] = cfg.max_pixels;
    j["patch_size"] = cfg.patch_size;
    j["merge_size"] = cfg.merge_size;
    j["temporal_patch_size"] = cfg.temporal_patch_size;
    j["resize_kernel"] = resizer;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("image:           %s\n", image_path.c_str());
  std::printf("config:          %s (min_pixels %lld, max_pixels %lld, patch %lld, merge %lld, temporal %lld)\n",
              cfg_source.c_str(), (long long)cfg.min_pixels, (long long)cfg.max_pixels, (long long)cfg.patch_size,
              (long long)cfg.merge_size, (long long)cfg.temporal_patch_size);
  std::printf("original size:   %d x %d (w x h)\n", img.width, img.height);
  std::printf("resized size:    %lld x %lld (w x h)%s\n", (long long)p.resized_w, (long long)p.resized_h,
              resized ? "" : "  (no resize)");
  std::printf("grid (t, h, w):  %lld, %lld, %lld\n", (long long)p.grid_t, (long long)p.grid_h, (long long)p.grid_w);
  std::printf("image tokens:    %lld\n", (long long)p.num_tokens());
  std::printf("pixel_values:    [%lld, %lld] float32, sum %.6f\n", (long long)p.pixel_values.size(0),
              (long long)p.pixel_values.size(1), sum);
  std::printf("resize kernel:   %s\n", resizer);
  return 0;
}

}  // namespace

PVM_COMMAND("preprocess", "load an image and run Qwen3-VL preprocessing (sizes, patch grid, image tokens)",
            "--image FILE [--config preprocessor_config.json|MODEL_DIR] [--min-pixels N] [--max-pixels N] "
            "[--no-exif] [--save-resized OUT.png] [--json]",
            run_preprocess);
