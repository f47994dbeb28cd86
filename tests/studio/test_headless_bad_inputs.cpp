// Issue 21: the CLI's bad-input suite run against the studio's headless mode, for the inputs the
// studio takes on its command line (--model, --pvm, --vismem, --image, --open). Each bad input, given to
// `pvm-studio --screenshot ... --save-session ... --export-plot ...` under Xvfb, must end the
// run with exit 1 (no crash), one error line on stderr naming the file, and no output written;
// where the CLI takes the same input, `pvm` must refuse it too, naming the same file.
#include <gtest/gtest.h>
#include <stb_image_write.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "engine/base/fs_util.h"
#include "engine/base/version.h"
#include "views/session_io.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string sibling(const char* name) {  // a binary of this build, next to the test
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string p = std::string(buf, size_t(n));
  p = p.substr(0, p.find_last_of('/') + 1) + name;
  return ::access(p.c_str(), X_OK) == 0 ? p : "";
}

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Result {
  int rc = -1;  // -1: did not exit normally (a crash or a signal)
  std::string err;
};

Result run(const std::string& cmd, const std::string& dir) {
  const std::string e = dir + "/stderr.txt";
  int st = std::system((cmd + " >" + dir + "/stdout.txt 2>" + e).c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(e)};
}

std::vector<std::string> error_lines(const std::string& err) {
  std::vector<std::string> out;
  size_t p = 0;
  while (p < err.size()) {
    size_t e = err.find('\n', p);
    std::string l = err.substr(p, e == std::string::npos ? std::string::npos : e - p);
    if (l.find("error") != std::string::npos) out.push_back(l);
    if (e == std::string::npos) break;
    p = e + 1;
  }
  return out;
}

void write_png(const std::string& p, int w, int h) {
  std::vector<uint8_t> px(size_t(w) * h * 3, 100);
  ASSERT_TRUE(stbi_write_png(p.c_str(), w, h, 3, px.data(), w * 3));
}

// One Xvfb for all cases (xvfb-run per case would race for display numbers when cases run in
// parallel). -displayfd makes the server pick a free display and tell us which.
struct Xvfb {
  pid_t pid = -1;
  std::string display;
  Xvfb() {
    int fds[2];
    if (::pipe(fds) != 0) return;
    pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      int devnull = ::open("/dev/null", O_WRONLY);
      if (devnull >= 0) ::dup2(devnull, 2), ::dup2(devnull, 1);
      const std::string fd = std::to_string(fds[1]);
      ::execlp("Xvfb", "Xvfb", "-displayfd", fd.c_str(), "-screen", "0", "1024x768x24", "-nolisten", "tcp", (char*)nullptr);
      ::_exit(127);
    }
    ::close(fds[1]);
    struct pollfd p {fds[0], POLLIN, 0};
    std::string num;
    char c;
    while (::poll(&p, 1, 20000) > 0 && ::read(fds[0], &c, 1) == 1 && c != '\n') num += c;
    ::close(fds[0]);
    if (!num.empty()) display = ":" + num;
  }
  ~Xvfb() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

}  // namespace

TEST(StudioHeadless, RefusesTheBadInputsTheCliRefuses) {
  const std::string studio = sibling("pvm-studio"), cli = sibling("pvm");
  if (studio.empty() || cli.empty()) GTEST_SKIP() << "pvm-studio or pvm not built next to the test";
  if (std::system("command -v Xvfb >/dev/null 2>&1") != 0) GTEST_SKIP() << "Xvfb not found";
  const std::string assets = pvm::source_dir() + "/assets";
  if (!fs::exists(assets + "/default-model/config.json")) GTEST_SKIP() << "no default model";
  const std::string d = (fs::temp_directory_path() / ("pvm_headless_" + std::to_string(::getpid()))).string();
  fs::remove_all(d);
  fs::create_directories(d);

  // ---- the bad inputs ----
  // Models: a config that fails validation (0 heads), a FIFO config, a file where a folder goes.
  fs::create_directories(d + "/zero_heads");
  json cfg = json::parse(pvm::read_file_to_string(assets + "/default-model/config.json"));
  cfg["text_config"]["num_attention_heads"] = 0;
  std::ofstream(d + "/zero_heads/config.json") << cfg.dump();
  fs::copy_file(assets + "/default-model/model.safetensors", d + "/zero_heads/model.safetensors");
  fs::create_directories(d + "/fifo_model");
  ASSERT_EQ(::mkfifo((d + "/fifo_model/config.json").c_str(), 0600), 0);
  std::ofstream(d + "/a_file") << "not a model";
  // Images: a folder, text, a truncated PNG, a header claiming 20000x20000, 1x20000, a FIFO.
  fs::create_directories(d + "/img_dir");
  std::ofstream(d + "/text.png") << "just text";
  write_png(d + "/ok.png", 64, 48);
  const std::string png = pvm::read_file_to_string(d + "/ok.png");
  std::ofstream(d + "/cut.png", std::ios::binary) << png.substr(0, png.size() / 2);
  std::ofstream(d + "/huge.png", std::ios::binary)
      << std::string("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x4e\x20\0\0\x4e\x20\x08\x02\0\0\0\0\0\0\0", 33) << std::string(64, '\0');
  write_png(d + "/thin.png", 1, 20000);
  ASSERT_EQ(::mkfifo((d + "/fifo.png").c_str(), 0600), 0);
  // Adapters: another adapter type, a folder without adapter_config.json, a FIFO config.
  fs::copy(assets + "/default-pvm", d + "/lora");
  json ac = json::parse(pvm::read_file_to_string(d + "/lora/adapter_config.json"));
  ac["adapter_type"] = "lora";
  std::ofstream(d + "/lora/adapter_config.json", std::ios::trunc) << ac.dump();
  fs::create_directories(d + "/no_adapter");
  fs::create_directories(d + "/fifo_adapter");
  ASSERT_EQ(::mkfifo((d + "/fifo_adapter/adapter_config.json").c_str(), 0600), 0);
  // Sessions: a future format, broken JSON, a FIFO trace, a missing folder.
  {
    pvm::studio::UiState ui;
    ui.settings.prompt = "p";
    pvm::studio::save_session(d + "/future", ui, "", json::object());
    json sj = json::parse(pvm::read_file_to_string(d + "/future/session.json"));
    sj["pvm_studio_session"] = 2;
    std::ofstream(d + "/future/session.json", std::ios::trunc) << sj.dump();
    pvm::studio::save_session(d + "/fifo_trace", ui, "", json::object());
    fs::remove(d + "/fifo_trace/trace_pvm.jsonl");
    ASSERT_EQ(::mkfifo((d + "/fifo_trace/trace_pvm.jsonl").c_str(), 0600), 0);
  }
  fs::create_directories(d + "/broken");
  std::ofstream(d + "/broken/session.json") << "{";

  struct Case {
    std::string studio_args;  // what pvm-studio gets
    std::string cli_args;     // the same input to pvm ("" where the CLI has no such input)
    std::string names;        // the path both errors must name
  };
  const std::string gen = "generate --prompt hi --max-new-tokens 1 ";
  const std::vector<Case> cases{
      {"--model " + d + "/nope", gen + "--model " + d + "/nope", d + "/nope"},
      {"--model " + d + "/zero_heads", gen + "--model " + d + "/zero_heads", d + "/zero_heads/config.json"},
      {"--model " + d + "/fifo_model", gen + "--model " + d + "/fifo_model", d + "/fifo_model/config.json"},
      {"--model " + d + "/a_file", gen + "--model " + d + "/a_file", d + "/a_file"},
      {"--image " + d + "/img_dir", "preprocess --image " + d + "/img_dir", d + "/img_dir"},
      {"--image " + d + "/text.png", "preprocess --image " + d + "/text.png", d + "/text.png"},
      {"--image " + d + "/cut.png", "preprocess --image " + d + "/cut.png", d + "/cut.png"},
      {"--image " + d + "/huge.png", "preprocess --image " + d + "/huge.png", d + "/huge.png"},
      {"--image " + d + "/thin.png", "preprocess --image " + d + "/thin.png", d + "/thin.png"},
      {"--image " + d + "/fifo.png", "preprocess --image " + d + "/fifo.png", d + "/fifo.png"},
      {"--image " + d + "/absent.png", "preprocess --image " + d + "/absent.png", d + "/absent.png"},
      {"--pvm " + d + "/lora", gen + "--pvm " + d + "/lora", d + "/lora/adapter_config.json"},
      {"--pvm " + d + "/no_adapter", gen + "--pvm " + d + "/no_adapter", d + "/no_adapter"},
      {"--pvm " + d + "/fifo_adapter", gen + "--pvm " + d + "/fifo_adapter", d + "/fifo_adapter/adapter_config.json"},
      // a VisMem adapter: a PVM one given as VisMem, and a folder that is not there
      {"--vismem " + d + "/lora", gen + "--vismem " + d + "/lora", d + "/lora"},
      {"--vismem " + d + "/no_adapter", gen + "--vismem " + d + "/no_adapter", d + "/no_adapter"},
      {"--open " + d + "/future", "", d + "/future/session.json"},
      {"--open " + d + "/broken", "", d + "/broken/session.json"},
      {"--open " + d + "/fifo_trace", "", d + "/fifo_trace/trace_pvm.jsonl"},
      {"--open " + d + "/nope", "", d + "/nope"},
  };
  Xvfb x;
  ASSERT_FALSE(x.display.empty()) << "Xvfb did not start";
  // `timeout`: a hang is a failure (exit 124), not a stuck test.
  auto studio_cmd = [&](const std::string& out, const std::string& args) {
    return "DISPLAY=" + x.display + " timeout 120 " + studio + " --size 640x400 --frames 3 --screenshot " + out +
           "/shot.png --save-session " + out + "/session --export-plot " + out + "/plot " + args;
  };
  // A heavily loaded machine can refuse a connection to the shared Xvfb ("no display"): that is the
  // harness, not the input under test, so such a run is retried (twice at most, after a pause).
  auto run_studio = [&](const std::string& cmd, const std::string& dir) {
    Result r = run(cmd, dir);
    for (int retry = 0; retry < 2 && r.err.find("pvm-studio: no display") != std::string::npos; ++retry) {
      std::this_thread::sleep_for(std::chrono::seconds(2));
      r = run(cmd, dir);
    }
    return r;
  };
  const auto t0 = std::chrono::steady_clock::now();
  // The harness works: a good input gives exit 0 and the outputs.
  fs::create_directories(d + "/good");
  Result good = run_studio(studio_cmd(d + "/good", "--image " + d + "/ok.png"), d + "/good");
  ASSERT_EQ(good.rc, 0) << good.err;
  EXPECT_TRUE(fs::exists(d + "/good/shot.png"));
  EXPECT_TRUE(fs::exists(d + "/good/session/session.json"));
  // Cases run three at a time, each in its own folder (most of a run is starting LibTorch).
  struct Outcome {
    Result studio, cli;
    std::vector<std::string> left;  // what the studio left in its output folder
  };
  std::vector<Outcome> outcomes(cases.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t k; (k = next++) < cases.size();) {
      const std::string dir = d + "/case" + std::to_string(k), out = dir + "/out";
      fs::create_directories(out);
      outcomes[k].studio = run_studio(studio_cmd(out, cases[k].studio_args), dir);
      for (auto& e : fs::directory_iterator(out)) outcomes[k].left.push_back(e.path().filename().string());
      if (!cases[k].cli_args.empty()) outcomes[k].cli = run("timeout 60 " + cli + " " + cases[k].cli_args, dir);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    const Outcome& o = outcomes[k];
    EXPECT_EQ(o.studio.rc, 1) << c.studio_args << ": " << o.studio.err;
    auto lines = error_lines(o.studio.err);
    EXPECT_EQ(lines.size(), 1u) << c.studio_args << ": " << o.studio.err;
    if (!lines.empty()) {
      EXPECT_EQ(lines[0].rfind("pvm-studio: error: ", 0), 0u) << lines[0];
      EXPECT_NE(lines[0].find(c.names), std::string::npos) << c.studio_args << ": " << lines[0];
    }
    // Nothing left behind: no screenshot, session or plot, no temp file.
    EXPECT_TRUE(o.left.empty()) << c.studio_args << ": left " << ::testing::PrintToString(o.left);
    if (c.cli_args.empty()) continue;
    EXPECT_EQ(o.cli.rc, 1) << c.cli_args << ": " << o.cli.err;
    lines = error_lines(o.cli.err);  // (a "loading DIR ..." note may come first)
    EXPECT_EQ(lines.size(), 1u) << c.cli_args << ": " << o.cli.err;
    if (!lines.empty()) {
      EXPECT_NE(lines[0].find(c.names), std::string::npos) << c.cli_args << ": " << o.cli.err;
    }
  }
  // A FIFO as the layout file (ImGui would fopen it in the first frame and block): a usage error.
  Result ini = run("DISPLAY=" + x.display + " timeout 60 " + studio + " --screenshot " + d + "/ini.png --ini " + d + "/fifo.png", d);
  EXPECT_EQ(ini.rc, 2) << ini.err;
  EXPECT_EQ(ini.err.rfind("pvm-studio: error: --ini " + d + "/fifo.png: is not a regular file", 0), 0u) << ini.err;
  EXPECT_FALSE(fs::exists(d + "/ini.png"));
  std::printf("[headless] %zu bad inputs in %.1f s\n", cases.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  fs::remove_all(d);
}
