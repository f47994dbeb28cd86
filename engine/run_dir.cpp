#include "engine/run_dir.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <vector>

#include "engine/base/error.h"
#include "engine/base/hash.h"
#include "engine/base/version.h"

namespace pvm::train {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

uint64_t fnv(uint64_t h, const void* data, size_t n) { return fnv1a(data, n, h); }

std::string hex64(uint64_t h, const char* prefix = "fnv1a64:") {
  char b[48];
  std::snprintf(b, sizeof b, "%s%016llx", prefix, (unsigned long long)h);
  return b;
}

}  // namespace

std::string timestamp_name() {
  auto t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&t));
  return buf;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string file_hash(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  uint64_t h = kFnv1aOffset;
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), buf.size());
    h = fnv(h, buf.data(), (size_t)f.gcount());
  }
  return hex64(h);
}

// Fast model identity: config.json bytes + every safetensors file's name, size and header.
std::string model_hash(const std::string& dir) {
  uint64_t h = kFnv1aOffset;
  auto cfg = read_file_to_string(join_path(dir, "config.json"), 16 << 20);
  h = fnv(h, cfg.data(), cfg.size());
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (auto& f : files) {
    auto name = f.filename().string();
    uint64_t size = fs::file_size(f);
    h = fnv(h, name.data(), name.size());
    h = fnv(h, &size, sizeof size);
    std::ifstream in(f, std::ios::binary);
    uint64_t hl = 0;
    in.read(reinterpret_cast<char*>(&hl), 8);
    if (in && hl < (100u << 20)) {
      std::string hdr(hl, '\0');
      in.read(hdr.data(), (std::streamsize)hl);
      h = fnv(h, hdr.data(), (size_t)in.gcount());
    }
  }
  return hex64(h);
}

std::string git_commit() {
  std::string cmd = "git -C '" + source_dir() + "' rev-parse HEAD 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "unknown";
  char buf[128] = {0};
  std::string out;
  if (fgets(buf, sizeof buf, p)) out = buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out.size() == 40 ? out : "unknown";
}

std::string step_name(int64_t step) {
  char b[32];
  std::snprintf(b, sizeof b, "step-%06lld", (long long)step);
  return b;
}

void write_json(const std::string& path, const json& j) { atomic_write_file(path, j.dump(2) + "\n"); }

json read_json(const std::string& path) {
  try {
    return json::parse(read_file_to_string(path, 256 << 20));
  } catch (const json::exception&) {
    throw file_error(path, "not valid JSON");
  }
}

void RunDir::lock_for_training() {
  // One trainer per run folder: a second `pvm train --resume` on a live run would interleave
  // metrics and checkpoints. The lock dies with its process (flock), so kill -9 leaves none.
  make_dirs(dir_, "run");
  lock_ = std::make_unique<DirLock>(dir_, "training run");
  if (lock_->stale_pid())
    std::fprintf(stderr, "note: %s: took over the lock of pid %ld, which is no longer running\n", dir_.c_str(),
                 lock_->stale_pid());
  // Holding the lock, every temp folder / file here is from an interrupted save: remove it.
  for (const auto& d : {checkpoints(), dir_})
    for (auto& n : remove_stale_temps(d, ".tmp-"))
      std::fprintf(stderr, "note: removed %s, left by an interrupted save\n", join_path(d, n).c_str());
}

std::string RunDir::latest_checkpoint() const {
  auto latest = join_path(checkpoints(), "latest");
  if (!is_regular_file(latest)) throw file_error(latest, "no checkpoint to resume from");
  auto name = read_file_to_string(latest, 4096);
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  auto ckpt = join_path(checkpoints(), name);
  if (!is_directory(ckpt)) throw file_error(ckpt, "checkpoint named by checkpoints/latest is missing");
  return ckpt;
}

bool RunDir::holds_run() const {
  return path_exists(join_path(checkpoints(), "latest")) || path_exists(file("metrics.jsonl"));
}

void RunDir::write_status(const std::string& state, int64_t step, int64_t total, const std::string& message) const {
  write_json(file("status.json"), {{"state", state},
                                   {"step", step},
                                   {"total_steps", total},
                                   {"pid", (int64_t)::getpid()},
                                   {"message", message},
                                   {"time", now_s()}});
}

void RunDir::save_folder(const std::string& parent, const std::string& name,
                         const std::function<void(const std::string& dir)>& fill) const {
  const std::string dst = join_path(parent, name);
  const std::string tmp = join_path(parent, ".tmp-" + name + "-" + std::to_string(::getpid()));
  try {
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    fill(tmp);
    fs::remove_all(dst);
    fs::rename(tmp, dst);  // the checkpoint appears complete or not at all
  } catch (...) {
    // A full disk or an I/O error midway: remove the partial folder, and say so, then fail.
    std::error_code ec;
    fs::remove_all(tmp, ec);
    std::fprintf(stderr, "note: removed the partial checkpoint %s after a failed save\n", tmp.c_str());
    rethrow_with_context(dst, "saving the checkpoint");
  }
}

void RunDir::save_checkpoint(int64_t step, int64_t keep, const std::function<void(const std::string& dir)>& fill) const {
  const std::string name = step_name(step);
  save_folder(checkpoints(), name, fill);
  atomic_write_file(join_path(checkpoints(), "latest"), name + "\n");
  prune(keep);
}

void RunDir::save_final(const std::function<void(const std::string& dir)>& fill) const { save_folder(dir_, "final", fill); }

void RunDir::prune(int64_t keep) const {
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(checkpoints())) {
    auto n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step-", 0) == 0) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  for (size_t i = 0; i + (size_t)keep < names.size(); ++i) fs::remove_all(join_path(checkpoints(), names[i]));
}

}  // namespace pvm::train
