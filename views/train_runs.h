// Training runs as the studio sees them (torch-free): a run directory written by `pvm train`
// (config.json, manifest.json, metrics.jsonl, status.json, checkpoints/, final/), its metrics read
// incrementally while the trainer appends, the list of past runs, and the child process that runs
// the trainer.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pvm::studio {

// One line of metrics.jsonl. Missing numbers are NaN; eval lines carry only step/eval_loss/time.
struct MetricRow {
  int64_t step = 0, total_steps = 0;
  double time = 0, elapsed_s = 0, loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0, eta_s = 0;
  double mem_bytes = 0;
  bool eval = false;
  double eval_loss = 0;
  std::map<std::string, double> gate_alpha;  // PVM layer -> value
  std::map<std::string, double> extra;       // any other numeric field (reward_mean, format_rate, ...)
};

// Parses one JSON line. False with *error ("<where>: ...") for bad JSON, a non-object, or a line
// without an integer "step".
bool parse_metric_line(const std::string& line, const std::string& where, MetricRow* out, std::string* error);

// Follows a growing metrics.jsonl: poll() reads the bytes appended since the last call; a last line
// without its newline waits for the next poll (the trainer may be writing it). Bad lines are
// skipped and counted, the first error kept.
class MetricsTail {
 public:
  explicit MetricsTail(std::string path = "") : path_(std::move(path)) {}
  bool poll();  // true when new rows arrived
  const std::vector<MetricRow>& rows() const { return rows_; }
  int bad_lines() const { return bad_; }
  const std::string& first_error() const { return first_error_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_, partial_, first_error_;
  uint64_t offset_ = 0;
  int64_t line_no_ = 0;
  int bad_ = 0;
  std::vector<MetricRow> rows_;
};

struct RunStatus {
  bool ok = false;       // status.json read and parsed
  std::string state;     // running | finished | stopped | failed
  int64_t step = 0, total_steps = 0;
  int64_t pid = 0;
  std::string message, error;
};
RunStatus read_run_status(const std::string& run_dir);

struct RunInfo {
  std::string dir, name, mode;
  RunStatus status;
  bool has_final = false;
  bool final_is_adapter = false;  // final/adapter_config.json (PVM-only run) vs a model folder
  double mtime = 0;
};
// Sub-folders of `root` that look like runs (status.json or metrics.jsonl or config.json), newest first.
std::vector<RunInfo> list_runs(const std::string& root);

// A child process with stdout+stderr going to a file.
class ChildProcess {
 public:
  ~ChildProcess();  // leaves a running trainer alone (it keeps writing its run dir)
  bool start(const std::vector<std::string>& argv, const std::string& log_path, std::string* error);
  bool running();              // reaps when it exited
  int exit_code() const { return code_; }  // -1 until it exited; 128+N when killed by signal N
  bool terminate();            // SIGTERM (the trainer saves and stops cleanly)
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int code_ = -1;
};

// The `pvm` CLI next to the running executable (or on PATH when not there).
std::string pvm_binary();

}  // namespace pvm::studio
