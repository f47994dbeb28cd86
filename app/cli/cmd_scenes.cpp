// pvm scenes: write a scenes data set (images, ground truth, SFT / GRPO / QA-SFT JSONL) with a
// held-out split whose seeds never occur in the training split.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/scenes.h"
#include "engine/image_write.h"

namespace {

namespace sc = pvm::scenes;
using nlohmann::json;

struct SplitStats {
  size_t scenes = 0, qa = 0, objects = 0, words = 0;
};

// What this run created, so that a failure (a full disk) can take it back instead of leaving
// hundreds of images behind. Folders are listed only when this run created them.
struct Written {
  std::vector<std::string> files, data, dirs;  // images, committed JSONL files, folders
  void mkdirs(const std::string& d) {
    namespace fs = std::filesystem;
    std::vector<std::string> fresh;
    for (fs::path p = d; !p.empty() && !fs::exists(p); p = p.parent_path()) fresh.push_back(p.string());
    std::error_code ec;
    fs::create_directories(d, ec);
    if (ec) throw pvm::file_error(d, "cannot create directory: " + ec.message());
    dirs.insert(dirs.end(), fresh.rbegin(), fresh.rend());
  }
  // Remove the files, then the folders deepest first (only if empty: never a user's file).
  size_t undo() {
    std::error_code ec;
    size_t n = 0;
    for (auto& f : files) n += std::filesystem::remove(f, ec) ? 1 : 0;
    for (auto& f : data) std::filesystem::remove(f, ec);
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) std::filesystem::remove(*it, ec);
    return n;
  }
};

// Writes one split into `dir`: images/NNNNNN.png and the five JSONL files (paths relative to them).
SplitStats write_split(const std::string& dir, uint64_t base_seed, int split, long long count, const sc::SceneOptions& opt,
                       int qa_per_scene, const std::string& label, bool quiet, Written& written) {
  if (pvm::path_exists(dir) && !pvm::is_directory(dir)) throw pvm::file_error(dir, "is a file, expected an output folder");
  written.mkdirs(pvm::join_path(dir, "images"));
  pvm::AtomicWriter scenes_w(pvm::join_path(dir, "scenes.jsonl")), sft_w(pvm::join_path(dir, "sft.jsonl")),
      grpo_w(pvm::join_path(dir, "grpo.jsonl")), qa_w(pvm::join_path(dir, "qa_sft.jsonl")),
      describe_w(pvm::join_path(dir, "describe.jsonl"));
  auto line = [](pvm::AtomicWriter& w, const json& j) {
    std::string s = j.dump() + "\n";
    w.write(s.data(), s.size());
  };
  SplitStats st;
  const auto t0 = std::chrono::steady_clock::now();
  const long long every = std::max<long long>(1, count / 100);
  const bool progress = count >= 200 && !quiet;
  for (long long i = 0; i < count; ++i) {
    const uint64_t seed = sc::scene_seed(base_seed, split, static_cast<uint64_t>(i));
    auto scene = sc::generate(seed, opt);
    auto img = sc::render(scene);
    char name[32];
    std::snprintf(name, sizeof name, "images/%06lld.png", i);
    pvm::ImageRGB out;
    out.width = img.width, out.height = img.height, out.rgb = std::move(img.rgb);
    const std::string png = pvm::join_path(dir, name);
    const bool existed = pvm::path_exists(png);  // a file of an earlier run is replaced, not ours to remove
    if (!existed) written.files.push_back(png);
    pvm::write_png(png, out);

    const std::string desc = sc::describe(scene);
    json sj = sc::to_json(scene);
    sj["image"] = name;
    sj["description"] = desc;
    line(scenes_w, sj);
    line(sft_w, {{"messages",
                  {{{"role", "user"}, {"content", "<image>" + sc::describe_prompt()}}, {{"role", "assistant"}, {"content", desc}}}},
                 {"images", {name}}});
    // GRPO on whole descriptions (grpo.reward scene_description): the truth is the solution.
    line(describe_w, {{"prompt", "<image>" + sc::describe_prompt()}, {"images", {name}}, {"solution", desc}});
    for (auto& q : sc::questions(scene, sc::qa_seed(seed), qa_per_scene)) {
      line(grpo_w, {{"prompt", "<image>" + sc::qa_prompt(q)}, {"images", {name}}, {"solution", q.answer}});
      line(qa_w, {{"messages",
                   {{{"role", "user"}, {"content", "<image>" + sc::qa_prompt(q)}},
                    {{"role", "assistant"}, {"content", sc::qa_completion(q)}}}},
                  {"images", {name}}});
      ++st.qa;
    }
    ++st.scenes;
    st.objects += scene.objects.size();
    st.words += sc::words(desc).size();
    if (progress && ((i + 1) % every == 0 || i + 1 == count)) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double eta = s / double(i + 1) * double(count - i - 1);
      std::fprintf(stderr, "\r%s: %lld/%lld scenes, %.0f s, ETA %.0f s   ", label.c_str(), i + 1, count, s, eta);
      if (i + 1 == count) std::fprintf(stderr, "\n");
    }
  }
  for (auto* w : {&scenes_w, &sft_w, &grpo_w, &qa_w, &describe_w}) {
    const bool existed = pvm::path_exists(w->path());
    w->commit();
    if (!existed) written.data.push_back(w->path());  // a split done before a later failure goes too
  }
  return st;
}

int run(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv, {"--out", "--count", "--seed", "--objects", "--heldout", "--qa-per-scene", "--size"},
                   {"--textures", "--digits", "--quiet"});
  const std::string out = a.require("--out");
  const long long count = a.get_int("--count", 1000, 0, 10000000);
  const long long seed = a.get_int("--seed", 0, 0, INT64_MAX);
  const long long heldout = a.get_int("--heldout", std::max<long long>(count > 0 ? 1 : 0, count / 10), 0, 10000000);
  const long long qa = a.get_int("--qa-per-scene", 4, 0, 64);
  sc::SceneOptions opt;
  if (a.has("--objects")) sc::parse_objects_option(a.get("--objects"), opt);
  if (a.has("--size")) {
    const long long s = a.get_int("--size", 256, 64, 4096);
    opt.width = opt.height = static_cast<int>(s);
  }
  opt.textures = a.has("--textures");
  opt.digits = a.has("--digits");
  opt.validate("options");

  const bool quiet = a.has("--quiet");
  Written written;
  SplitStats train, held;
  try {
    train = write_split(out, static_cast<uint64_t>(seed), 0, count, opt, static_cast<int>(qa), "train", quiet, written);
    if (heldout > 0)
      held = write_split(pvm::join_path(out, "heldout"), static_cast<uint64_t>(seed), 1, heldout, opt,
                         static_cast<int>(qa), "heldout", quiet, written);
  } catch (...) {
    // The JSONL files are atomic (never half-written); the images written so far go too.
    size_t n = written.undo();
    std::fprintf(stderr, "%snote: removed the %zu images (and %zu data files) this run had written to %s\n",
                 quiet ? "" : "\n", n, written.data.size(), out.c_str());
    throw;
  }

  // What made this data set, so it can be regenerated and checked (eval uses split 1 = held-out).
  json info = {{"generator", "pvm scenes"},
               {"seed", seed},
               {"count", count},
               {"heldout", heldout},
               {"qa_per_scene", qa},
               {"options", sc::to_json(sc::Scene{0, opt, {}})["options"]},
               {"describe_prompt", sc::describe_prompt()},
               {"answer_format", sc::answer_format_instruction()},
               {"seeds", "scene i of split k (0 train, 1 heldout) has seed scene_seed(seed, k, i)"}};
  pvm::atomic_write_file(pvm::join_path(out, "dataset.json"), info.dump(2) + "\n");
  if (!quiet) {
    std::fprintf(stderr, "wrote %s: %zu train scenes (%zu QA), %zu held-out (%zu QA); mean %.1f objects, %.0f words per description\n",
                 out.c_str(), train.scenes, train.qa, held.scenes, held.qa,
                 train.scenes ? double(train.objects) / train.scenes : 0.0, train.scenes ? double(train.words) / train.scenes : 0.0);
  }
  return 0;
}

}  // namespace

PVM_COMMAND("scenes", "write a procedural scenes data set (images, ground truth, SFT/GRPO/QA JSONL, held-out split)",
            "--out DIR [--count N] [--seed S] [--objects MIN-MAX] [--textures] [--digits] [--heldout N] "
            "[--qa-per-scene K] [--size PX] [--quiet]",
            run);
