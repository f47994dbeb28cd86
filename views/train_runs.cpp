#include "views/train_runs.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <cstring>
#include <sstream>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"

extern char** environ;

namespace pvm::studio {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
double num(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_number() ? it->get<double>() : NAN;
}
}  // namespace

bool parse_metric_line(const std::string& line, const std::string& where, MetricRow* out, std::string* error) {
  json j;
  try {
    j = json::parse(line);
  } catch (const std::exception& e) {
    *error = where + ": not JSON (" + std::string(e.what()).substr(0, 80) + ")";
    return false;
  }
  if (!j.is_object()) {
    *error = where + ": expected a JSON object";
    return false;
  }
  auto st = j.find("step");
  if (st == j.end() || !st->is_number_integer()) {
    *error = where + ": no integer \"step\"";
    return false;
  }
  MetricRow r;
  r.step = st->get<int64_t>();
  r.eval = j.contains("eval_loss") && !j.contains("loss");
  r.eval_loss = num(j, "eval_loss");
  const double tot = num(j, "total_steps");
  r.total_steps = std::isfinite(tot) ? int64_t(tot) : 0;
  r.time = num(j, "time"), r.elapsed_s = num(j, "elapsed_s"), r.loss = num(j, "loss"), r.lr = num(j, "lr");
  r.grad_norm = num(j, "grad_norm"), r.tokens_per_s = num(j, "tokens_per_s"), r.eta_s = num(j, "eta_s");
  r.mem_bytes = num(j, "mem_bytes");
  if (auto g = j.find("gate_alpha"); g != j.end() && g->is_object())
    for (auto it = g->begin(); it != g->end(); ++it)
      if (it->is_number()) r.gate_alpha[it.key()] = it->get<double>();
  static const char* known[] = {"step", "total_steps", "time", "elapsed_s", "loss", "lr", "grad_norm",
                                "tokens_per_s", "eta_s", "mem_bytes", "eval_loss"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it->is_number()) continue;
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return it.key() == k; }) != std::end(known))
      continue;
    r.extra[it.key()] = it->get<double>();
  }
  *out = std::move(r);
  return true;
}

bool MetricsTail::poll() {
  // Polled from the UI thread: through open_regular_file, so a FIFO in a run folder cannot block it.
  uint64_t size = 0;
  int fd = -1;
  try {
    fd = open_regular_file(path_, "metrics", &size);
  } catch (const Error&) {
    return false;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (size < offset_) {  // truncated or replaced: start over
    offset_ = 0, partial_.clear(), rows_.clear(), bad_ = 0, line_no_ = 0, first_error_.clear();
  }
  if (size == offset_) return false;
  std::string chunk(size - offset_, '\0');
  size_t got = 0;
  while (got < chunk.size()) {
    const ssize_t n = ::pread(fd, chunk.data() + got, chunk.size() - got, off_t(offset_ + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += size_t(n);
  }
  chunk.resize(got);
  offset_ += chunk.size();
  partial_ += chunk;
  bool added = false;
  size_t start = 0;
  for (;;) {
    const size_t nl = partial_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string line = partial_.substr(start, nl - start);
    start = nl + 1;
    ++line_no_;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    MetricRow r;
    std::string err;
    if (parse_metric_line(line, path_ + ":" + std::to_string(line_no_), &r, &err)) {
      rows_.push_back(std::move(r));
      added = true;
    } else {
      if (!bad_) first_error_ = err;
      ++bad_;
    }
  }
  partial_.erase(0, start);
  return added;
}

RunStatus read_run_status(const std::string& run_dir) {
  RunStatus s;
  const std::string path = run_dir + "/status.json";
  if (!path_exists(path)) {
    s.error = path + ": not there";
    return s;
  }
  try {
    json j = json::parse(read_file_to_string(path, 1 << 20, "status"));
    s.state = j.value("state", "");
    s.step = j.value("step", int64_t(0));
    s.total_steps = j.value("total_steps", int64_t(0));
    s.pid = j.value("pid", int64_t(0));
    s.message = j.value("message", "");
    s.ok = true;
  } catch (const std::exception& e) {
    s.error = path + ": " + std::string(e.what()).substr(0, 100);
  }
  return s;
}

std::vector<RunInfo> list_runs(const std::string& root) {
  std::vector<RunInfo> out;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (!it->is_directory(ec) || it->path().filename().string().rfind('.', 0) == 0) continue;
    const fs::path d = it->path();
    if (!fs::exists(d / "status.json", ec) && !fs::exists(d / "metrics.jsonl", ec) && !fs::exists(d / "config.json", ec))
      continue;
    RunInfo r;
    r.dir = d.string();
    r.name = d.filename().string();
    r.status = read_run_status(r.dir);
    try {
      if (fs::exists(d / "config.json", ec)) r.mode = json::parse(read_file_to_string((d / "config.json").string(), 16 << 20, "run config")).value("mode", "");
    } catch (const std::exception&) {
    }
    r.has_final = fs::is_directory(d / "final", ec);
    r.final_is_adapter = fs::exists(d / "final" / "adapter_config.json", ec);
    struct stat st {};
    const fs::path probe = fs::exists(d / "metrics.jsonl", ec) ? d / "metrics.jsonl" : d;
    if (::stat(probe.c_str(), &st) == 0) r.mtime = double(st.st_mtime);
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(), [](const RunInfo& a, const RunInfo& b) {
    return a.mtime != b.mtime ? a.mtime > b.mtime : a.name < b.name;
  });
  return out;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) running();  // reap if it already ended; a live trainer keeps going
}

bool ChildProcess::start(const std::vector<std::string>& argv, const std::string& log_path, std::string* error) {
  if (pid_ > 0 && running()) {
    *error = "a process is already running (pid " + std::to_string(pid_) + ")";
    return false;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    *error = argv[0] + ": cannot start (" + std::strerror(rc) + ")";
    return false;
  }
  pid_ = pid;
  code_ = -1;
  return true;
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int st = 0;
  const pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) code_ = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
  pid_ = -1;
  return false;
}

bool ChildProcess::terminate() { return pid_ > 0 && ::kill(pid_, SIGTERM) == 0; }

std::string pvm_binary() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    buf[n] = 0;
    fs::path p = fs::path(buf).parent_path() / "pvm";
    std::error_code ec;
    if (fs::exists(p, ec)) return p.string();
  }
  return "pvm";
}

}  // namespace pvm::studio
