// Log sink (thread-safe: engine workers push from any thread) and the view that shows it.
#pragma once
#include <cstdarg>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "views/view.h"

namespace pvm::studio {

enum class LogLevel { Debug, Info, Warn, Error };

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
void log_debug(const char* fmt, ...) IM_FMTARGS(1);
void log_info(const char* fmt, ...) IM_FMTARGS(1);
void log_warn(const char* fmt, ...) IM_FMTARGS(1);
void log_error(const char* fmt, ...) IM_FMTARGS(1);

class LogView : public View {
 public:
  LogView();
  void draw() override;

 private:
  void sync();
  std::vector<LogLine> lines_;  // local copy: drawing does not hold the sink's lock
  uint64_t last_seq_ = 0;
  ImGuiTextFilter filter_;
  bool show_[4] = {false, true, true, true};
  bool auto_scroll_ = true;
  bool scroll_to_end_ = false;
};

}  // namespace pvm::studio
