// The studio's log: a thread-safe, bounded list of lines that any thread (the session's model
// worker, the views) pushes to and the Log view reads. No UI here, so the session and the views
// both use it without one depending on the other.
#pragma once
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace pvm {

enum class LogLevel { Debug, Info, Warn, Error };

// "debug", "info ", "warn ", "error" (same width, for aligned text).
const char* log_level_tag(LogLevel l);

struct LogLine {
  uint64_t seq;     // 1, 2, ... in push order
  double time;      // seconds since the sink was created
  LogLevel level;
  std::string text;
};

class LogSink {
 public:
  static LogSink& instance();

  void push(LogLevel level, std::string text);  // multi-line text becomes several lines
  // Lines with seq > after, oldest first (at most the sink's capacity).
  std::vector<LogLine> since(uint64_t after) const;
  LogLine last(LogLevel min_level = LogLevel::Debug) const;  // seq 0 when none
  void set_echo_stderr(bool on);
  void clear();

 private:
  LogSink();
  mutable std::mutex mu_;
  std::deque<LogLine> lines_;
  uint64_t next_seq_ = 1;
  size_t capacity_ = 20000;
  bool echo_ = false;
  double t0_;
};

// printf-style shortcuts into LogSink::instance().
#define PVM_PRINTF_ARGS __attribute__((format(printf, 1, 2)))
void log_debug(const char* fmt, ...) PVM_PRINTF_ARGS;
void log_info(const char* fmt, ...) PVM_PRINTF_ARGS;
void log_warn(const char* fmt, ...) PVM_PRINTF_ARGS;
void log_error(const char* fmt, ...) PVM_PRINTF_ARGS;
#undef PVM_PRINTF_ARGS

}  // namespace pvm
