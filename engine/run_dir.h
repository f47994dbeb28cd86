// A training run's folder (its files are listed in engine/train.h): the lock that keeps one trainer
// per run, status.json, atomic checkpoints under checkpoints/ with a `latest` pointer and pruning,
// and what the manifest records (content hashes, git commit). The runner (engine/train.cpp)
// decides what goes into a checkpoint; this file decides how it lands on disk.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/base/fs_util.h"

namespace pvm::train {

class RunDir {
 public:
  explicit RunDir(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }
  std::string file(const std::string& name) const { return join_path(dir_, name); }
  std::string checkpoints() const { return join_path(dir_, "checkpoints"); }

  // Main process, before anything is written: create the folder, take its lock (run.lock: a
  // second trainer on a live run is refused naming the pid; a dead process's lock is taken over
  // with a note), and remove the temp folders and files of interrupted saves, with a note.
  void lock_for_training();
  // The checkpoint folder named by checkpoints/latest; errors name the file that is missing.
  std::string latest_checkpoint() const;
  // A checkpoint or metrics are there: a fresh run must not start here.
  bool holds_run() const;

  // status.json: {"state", "step", "total_steps", "pid", "message", "time"}.
  void write_status(const std::string& state, int64_t step, int64_t total, const std::string& message = "") const;

  // Writes checkpoints/step-NNNNNN atomically (fill() writes into a temp folder that is renamed;
  // a failed save removes it and throws naming the checkpoint), points checkpoints/latest at it
  // and keeps the newest `keep` step folders.
  void save_checkpoint(int64_t step, int64_t keep, const std::function<void(const std::string& dir)>& fill) const;
  // The same for final/ in the run folder (no pointer, no pruning).
  void save_final(const std::function<void(const std::string& dir)>& fill) const;

 private:
  void save_folder(const std::string& parent, const std::string& name,
                   const std::function<void(const std::string& dir)>& fill) const;
  void prune(int64_t keep) const;

  std::string dir_;
  std::unique_ptr<DirLock> lock_;  // held from lock_for_training() to the end of the run
};

// "step-000042": checkpoint folder names sort by step.
std::string step_name(int64_t step);
// Local time as "20260101-120000", for default run folder names.
std::string timestamp_name();
// Wall-clock seconds since the epoch (metrics and status times).
double now_s();

// JSON files of a run (written atomically; a parse error names the file).
void write_json(const std::string& path, const nlohmann::json& j);
nlohmann::json read_json(const std::string& path);

// Manifest fingerprints: FNV-1a 64 of a file's bytes ("" when unreadable); of a model folder,
// config.json plus each safetensors file's name, size and header (fast: no weights read).
std::string file_hash(const std::string& path);
std::string model_hash(const std::string& dir);
// HEAD of the source folder's git checkout, "unknown" outside one.
std::string git_commit();

}  // namespace pvm::train
