#include "views/view_log.h"

#include <chrono>
#include <cstdio>

#include "views/fonts.h"

namespace pvm::studio {
namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

const char* level_tag(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info ";
    case LogLevel::Warn: return "warn ";
    case LogLevel::Error: return "error";
  }
  return "?";
}

ImVec4 level_color(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return ImVec4(0.55f, 0.58f, 0.62f, 1.0f);
    case LogLevel::Info: return ImVec4(0.86f, 0.88f, 0.90f, 1.0f);
    case LogLevel::Warn: return ImVec4(0.98f, 0.78f, 0.30f, 1.0f);
    case LogLevel::Error: return ImVec4(1.00f, 0.42f, 0.40f, 1.0f);
  }
  return ImVec4(1, 1, 1, 1);
}

void vlog(LogLevel level, const char* fmt, va_list ap) {
  char buf[2048];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  LogSink::instance().push(level, buf);
}

}  // namespace

// ---- sink ----

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
      if (echo_) std::fprintf(stderr, "[%s] %s\n", level_tag(level), line.text.c_str());
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

// ---- view ----

LogView::LogView() : View("Log", Slot::CenterBottom, true) {}

void LogView::sync() {
  auto fresh = LogSink::instance().since(last_seq_);
  if (fresh.empty()) return;
  last_seq_ = fresh.back().seq;
  lines_.insert(lines_.end(), std::make_move_iterator(fresh.begin()),
                std::make_move_iterator(fresh.end()));
  const size_t cap = 20000;
  if (lines_.size() > cap) lines_.erase(lines_.begin(), lines_.begin() + (lines_.size() - cap));
  if (auto_scroll_) scroll_to_end_ = true;
}

void LogView::draw() {
  sync();
  if (ImGui::Button("Clear")) {
    LogSink::instance().clear();
    lines_.clear();
  }
  ImGui::SameLine();
  bool copy = ImGui::Button("Copy");
  ImGui::SameLine();
  ImGui::Checkbox("Auto-scroll", &auto_scroll_);
  static const char* names[4] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; ++i) {
    ImGui::SameLine();
    ImGui::PushStyleColor(ImGuiCol_Text, level_color(LogLevel(i)));
    ImGui::Checkbox(names[i], &show_[i]);
    ImGui::PopStyleColor();
  }
  ImGui::SameLine();
  filter_.Draw("Filter", ImGui::GetContentRegionAvail().x * 0.5f);
  ImGui::Separator();

  ImGui::BeginChild("##log_lines", ImVec2(0, 0), false, ImGuiWindowFlags_HorizontalScrollbar);
  ImGui::PushFont(fonts().mono);
  // Indices of visible lines, so the clipper can skip the rest (20k lines stay cheap).
  std::vector<int> shown;
  shown.reserve(lines_.size());
  for (int i = 0; i < int(lines_.size()); ++i) {
    const LogLine& l = lines_[i];
    if (show_[int(l.level)] && filter_.PassFilter(l.text.c_str())) shown.push_back(i);
  }
  if (copy) {  // all shown lines, not just the ones the clipper would draw
    std::string text;
    for (int i : shown) {
      char head[32];
      std::snprintf(head, sizeof head, "%8.3f %s ", lines_[i].time, level_tag(lines_[i].level));
      text += head + lines_[i].text + "\n";
    }
    ImGui::SetClipboardText(text.c_str());
  }
  ImGuiListClipper clipper;
  clipper.Begin(int(shown.size()));
  while (clipper.Step()) {
    for (int k = clipper.DisplayStart; k < clipper.DisplayEnd; ++k) {
      const LogLine& l = lines_[shown[k]];
      ImGui::TextDisabled("%8.3f", l.time);
      ImGui::SameLine();
      ImGui::TextColored(level_color(l.level), "%s", level_tag(l.level));
      ImGui::SameLine();
      ImGui::TextUnformatted(l.text.c_str());
    }
  }
  ImGui::PopFont();
  // Follow the tail only while the user has not scrolled up.
  if (scroll_to_end_ && ImGui::GetScrollY() >= ImGui::GetScrollMaxY() - 2 * ImGui::GetTextLineHeight())
    ImGui::SetScrollHereY(1.0f);
  scroll_to_end_ = false;
  ImGui::EndChild();
}

}  // namespace pvm::studio
