#include "app/studio/bench_generate.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/image_write.h"

namespace pvm::studio {
namespace fs = std::filesystem;

namespace {

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / double(v.size());
}
double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(std::ceil(p * double(v.size()))) - 1)];
}

// Runs argv with stdout to out_path; returns the exit status (-1 when it could not start).
int run_to_file(const std::vector<std::string>& argv, const std::string& out_path) {
  std::vector<char*> args;  // built before fork: the child of a threaded process may not allocate
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) _exit(127);
    dup2(fd, 1);
    execv(args[0], args.data());
    _exit(127);
  }
  int st = 0;
  if (waitpid(pid, &st, 0) < 0) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string beside_this_binary(const std::string& name) {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? name : (self.parent_path() / name).string();
}

struct SideFigures {
  int64_t tokens = 0;
  bool same_answer = false;  // CLI only: its text equals the studio's (both greedy on the same inputs)
  double tokens_per_s = 0;  // this side's own rate
  int64_t memories = 0;     // VisMem: memories inserted
};

}  // namespace

int report_generate_bench(const UiState& ui, const GenerateSettings& s, const GenerateBenchFrames& frames,
                          const std::string& cli_path, const std::string& json_path) {
  auto fail = [](const std::string& why) {
    std::fprintf(stderr, "pvm-studio: error: --bench-generate: %s\n", why.c_str());
    return 1;
  };
  if (ui.model.dir.empty() || ui.model.dir.rfind("random:", 0) == 0)
    return fail("the CLI needs a model folder; this run used '" + ui.model.dir + "' (pass --model DIR)");
  if (!s.image.valid()) return fail("the run had no image");
  const bool no_cli = cli_path == "none";  // the studio's own figures only (a long run on a big model)
  const std::string cli = cli_path.empty() ? beside_this_binary("pvm") : cli_path;
  if (!no_cli && access(cli.c_str(), X_OK) != 0)
    return fail(cli + " is not an executable (build it, or pass --bench-cli PATH)");

  // The studio's figures: each side's own decode rate (interleaved sides take turns; the other
  // side's turns are not counted), and both sides' tokens over their summed decode time, as the
  // CLI's "both" below (comparable whether or not the studio interleaves).
  // "both" stays baseline + PVM, as before the VisMem arm; the VisMem arm is reported beside it.
  SideFigures st[kSides];
  double studio_time = 0;
  int64_t total = 0;
  for (int k = 0; k < kSides; ++k) {
    const SideData& sd = ui.side[k];
    st[k].tokens = int64_t(sd.tokens.size());
    if (st[k].tokens > 1 && sd.decode_s > 0) {
      st[k].tokens_per_s = double(st[k].tokens - 1) / sd.decode_s;
      if (k == int(Side::Vismem)) continue;
      studio_time += sd.decode_s;
      total += st[k].tokens - 1;
    }
  }
  if (total == 0 || studio_time <= 0) return fail("the studio generated fewer than 2 tokens on every side");
  const double studio_both = double(total) / studio_time;
  auto print_frames = [&] {
    std::printf("bench-generate: frames while generating: %zu, work mean %.2f ms p95 %.2f max %.2f | interval mean %.1f ms "
                "p95 %.1f max %.1f\n",
                frames.work_ms.size(), mean(frames.work_ms), pct(frames.work_ms, 0.95), pct(frames.work_ms, 1.0),
                mean(frames.interval_ms), pct(frames.interval_ms, 0.95), pct(frames.interval_ms, 1.0));
  };
  auto frames_json = [&] {
    return nlohmann::json{{"count", frames.work_ms.size()},
                          {"work_ms_mean", mean(frames.work_ms)},
                          {"work_ms_p95", pct(frames.work_ms, 0.95)},
                          {"work_ms_max", pct(frames.work_ms, 1.0)},
                          {"interval_ms_mean", mean(frames.interval_ms)},
                          {"interval_ms_p95", pct(frames.interval_ms, 0.95)},
                          {"interval_ms_max", pct(frames.interval_ms, 1.0)}};
  };
  auto side = [](const SideFigures& f) { return nlohmann::json{{"tokens", f.tokens}, {"tokens_per_s", f.tokens_per_s}}; };
  if (no_cli) {
    std::printf("bench-generate: model %s%s%s, %d tokens per side, probes: the CLI's --probe set, no CLI run\n",
                ui.model.dir.c_str(), ui.model.adapter.empty() ? "" : " + ", ui.model.adapter.c_str(), s.max_new_tokens);
    std::printf("bench-generate: studio (rendering at %.0f fps): baseline %lld tokens %.2f tok/s, PVM %lld tokens %.2f tok/s\n",
                frames.fps, (long long)st[0].tokens, st[0].tokens_per_s, (long long)st[1].tokens, st[1].tokens_per_s);
    print_frames();
    if (json_path.empty()) return 0;
    nlohmann::json j = {{"model", ui.model.dir},
                        {"adapter", ui.model.adapter},
                        {"max_new_tokens", s.max_new_tokens},
                        {"studio", {{"baseline", side(st[0])}, {"pvm", side(st[1])}, {"both_tokens_per_s", studio_both}}},
                        {"cli", nullptr},
                        {"frames", frames_json()}};
    std::ofstream f(json_path);
    f << j.dump(1) << "\n";
    return f ? 0 : fail("cannot write " + json_path);
  }

  // The same inputs for the CLI: the image as a lossless PNG (the CLI preprocesses it the same way).
  std::error_code ec;
  const fs::path dir = fs::temp_directory_path(ec) / ("pvm-bench-generate-" + std::to_string(getpid()));
  fs::create_directories(dir, ec);
  if (ec) return fail("cannot create " + dir.string() + ": " + ec.message());
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(d, e);
    }
  } cleanup{dir};
  ImageRGB img;
  img.width = s.image.width, img.height = s.image.height, img.rgb = s.image.rgb;
  const std::string image_path = (dir / "image.png").string();
  try {
    write_png(image_path, img);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  SideFigures cl[kSides];
  double cli_time = 0;
  int64_t cli_total = 0;
  // The CLI has no --vismem-p: with separators and p < 1 its VisMem answer is not the studio's.
  const bool vismem_comparable = s.vismem_invoke == "model" || s.vismem_p == 1.0f;
  for (int k = 0; k < kSides; ++k) {
    if (st[k].tokens == 0) continue;
    std::vector<std::string> argv = {cli, "generate", "--model", ui.model.dir, "--image", image_path, "--prompt", s.prompt,
                                     "--max-new-tokens", std::to_string(s.max_new_tokens), "--probe", "--json",
                                     "--seed", std::to_string(s.sampling.seed)};
    if (!s.system.empty()) argv.insert(argv.end(), {"--system", s.system});
    if (!ui.model.adapter.empty()) argv.insert(argv.end(), {"--pvm", ui.model.adapter});
    if (k != 1) argv.push_back("--no-pvm");
    if (k == int(Side::Vismem))
      argv.insert(argv.end(), {"--vismem", ui.model.vismem, "--vismem-invoke", s.vismem_invoke, "--vismem-max",
                               std::to_string(s.vismem_max)});
    const std::string out = (dir / ("cli_" + std::to_string(k) + ".json")).string();
    std::printf("bench-generate: running %s generate ... %s\n", cli.c_str(),
                k == 0 ? "--no-pvm" : k == 1 ? "(PVM)" : "--no-pvm --vismem (VisMem)");
    const int rc = run_to_file(argv, out);
    if (rc != 0) return fail(cli + " generate exited with status " + std::to_string(rc));
    try {
      std::ifstream f(out);
      auto j = nlohmann::json::parse(f);
      cl[k].tokens = int64_t(j.at("ids").size());
      cl[k].tokens_per_s = j.at("decode_tokens_per_s").get<double>();
      cl[k].same_answer = j.at("text").get<std::string>() == ui.side[k].text;
      if (k == int(Side::Vismem) && j.contains("invocations")) cl[k].memories = int64_t(j["invocations"].size());
    } catch (const std::exception& e) {
      return fail(out + ": not the JSON of pvm generate --json (" + std::string(e.what()) + ")");
    }
    if (cl[k].tokens > 1 && cl[k].tokens_per_s > 0 && k != int(Side::Vismem)) {
      cli_time += double(cl[k].tokens - 1) / cl[k].tokens_per_s;
      cli_total += cl[k].tokens - 1;
    }
  }
  if (cli_total == 0 || cli_time <= 0) return fail("the CLI generated fewer than 2 tokens on every side");
  const double cli_both = double(cli_total) / cli_time;  // one side after the other
  const double ratio = studio_both / cli_both;

  std::printf("bench-generate: model %s%s%s, %d tokens per side, probes: the CLI's --probe set\n", ui.model.dir.c_str(),
              ui.model.adapter.empty() ? "" : " + ", ui.model.adapter.c_str(), s.max_new_tokens);
  std::printf("bench-generate: studio (%s, rendering at %.0f fps): baseline %lld tokens %.1f tok/s, PVM %lld tokens %.1f tok/s,"
              " both %.1f tok/s\n",
              s.interleave ? "interleaved" : "one side after the other", frames.fps, (long long)st[0].tokens, st[0].tokens_per_s,
              (long long)st[1].tokens, st[1].tokens_per_s, studio_both);
  std::printf("bench-generate: pvm generate --probe: baseline %lld tokens %.1f tok/s, PVM %lld tokens %.1f tok/s, both %.1f tok/s"
              " (answers %s the studio's)\n",
              (long long)cl[0].tokens, cl[0].tokens_per_s, (long long)cl[1].tokens, cl[1].tokens_per_s, cli_both,
              (st[0].tokens == 0 || cl[0].same_answer) && (st[1].tokens == 0 || cl[1].same_answer) ? "equal" : "DIFFER from");
  if (st[2].tokens > 0) {
    for (const TokenRec& t : ui.side[2].tokens) st[2].memories += !t.invoked.empty();
    std::printf("bench-generate: VisMem arm (invoke %s, max %d): studio %lld tokens %.1f tok/s, %lld memories; CLI %lld "
                "tokens %.1f tok/s, %lld memories (answers %s)\n",
                s.vismem_invoke.c_str(), s.vismem_max, (long long)st[2].tokens, st[2].tokens_per_s, (long long)st[2].memories,
                (long long)cl[2].tokens, cl[2].tokens_per_s, (long long)cl[2].memories,
                !vismem_comparable ? "not comparable: the CLI has no --vismem-p" : cl[2].same_answer ? "equal" : "DIFFER");
  }
  print_frames();
  std::printf("bench-generate: studio / CLI tokens/s = %.3f\n", ratio);
  if (!json_path.empty()) {
    auto cli_side = [&](const SideFigures& f) {
      auto j = side(f);
      j["same_answer_as_studio"] = f.same_answer;
      return j;
    };
    nlohmann::json j = {{"model", ui.model.dir},
                        {"adapter", ui.model.adapter},
                        {"max_new_tokens", s.max_new_tokens},
                        {"interleave", s.interleave},
                        {"studio", {{"baseline", side(st[0])}, {"pvm", side(st[1])}, {"both_tokens_per_s", studio_both}}},
                        {"cli", {{"baseline", cli_side(cl[0])}, {"pvm", cli_side(cl[1])}, {"both_tokens_per_s", cli_both}}},
                        {"ratio", ratio},
                        {"frames", frames_json()}};
    if (st[2].tokens > 0) {
      auto v = side(st[2]);
      v["memories"] = st[2].memories;
      j["studio"]["vismem"] = v;
      auto c = cli_side(cl[2]);
      c["memories"] = cl[2].memories;
      c["comparable"] = vismem_comparable;
      j["cli"]["vismem"] = c;
      j["vismem"] = {{"adapter", ui.model.vismem}, {"invoke", s.vismem_invoke}, {"p", s.vismem_p}, {"max", s.vismem_max}};
    }
    std::ofstream f(json_path);
    f << j.dump(1) << "\n";
    if (!f) return fail("cannot write " + json_path);
  }
  return 0;
}

}  // namespace pvm::studio
