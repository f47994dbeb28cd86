#include "engine/base/log_sink.h"

#include <chrono>
#include <cstdarg>
#include <cstdio>

namespace pvm {
namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

void vlog(LogLevel level, const char* fmt, va_list ap) {
  char buf[2048];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  LogSink::instance().push(level, buf);
}

}  // namespace

const char* log_level_tag(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info ";
    case LogLevel::Warn: return "warn ";
    case LogLevel::Error: return "error";
  }
  return "?";
}

LogSink::LogSink() : t0_(now_s()) {}

LogSink& LogSink::instance() {
  static LogSink s;
  return s;
}

void LogSink::push(LogLevel level, std::string text) {
  const double t = now_s() - t0_;
  std::lock_guard<std::mutex> lock(mu_);
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    if (nl > start || start == 0) {
      LogLine line{next_seq_++, t, level, text.substr(start, nl - start)};
      if (echo_) std::fprintf(stderr, "[%s] %s\n", log_level_tag(level), line.text.c_str());
      lines_.push_back(std::move(line));
      if (lines_.size() > capacity_) lines_.pop_front();
    }
    start = nl + 1;
  }
}

std::vector<LogLine> LogSink::since(uint64_t after) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<LogLine> out;
  if (lines_.empty() || lines_.back().seq <= after) return out;
  // seq is contiguous inside the deque, so the first wanted line is found by arithmetic.
  uint64_t first = lines_.front().seq;
  size_t i = after >= first ? size_t(after - first + 1) : 0;
  out.assign(lines_.begin() + i, lines_.end());
  return out;
}

LogLine LogSink::last(LogLevel min_level) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = lines_.rbegin(); it != lines_.rend(); ++it)
    if (it->level >= min_level) return *it;
  return LogLine{0, 0, LogLevel::Info, {}};
}

void LogSink::set_echo_stderr(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  echo_ = on;
}

void LogSink::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  lines_.clear();  // next_seq_ keeps counting so views notice nothing was lost
}

#define PVM_LOG_FN(name, level)        \
  void name(const char* fmt, ...) {    \
    va_list ap;                        \
    va_start(ap, fmt);                 \
    vlog(level, fmt, ap);              \
    va_end(ap);                        \
  }
PVM_LOG_FN(log_debug, LogLevel::Debug)
PVM_LOG_FN(log_info, LogLevel::Info)
PVM_LOG_FN(log_warn, LogLevel::Warn)
PVM_LOG_FN(log_error, LogLevel::Error)
#undef PVM_LOG_FN

}  // namespace pvm
