#include "views/view_log.h"

#include <cstdio>

#include "views/fonts.h"

namespace pvm::studio {
namespace {

ImVec4 level_color(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return ImVec4(0.55f, 0.58f, 0.62f, 1.0f);
    case LogLevel::Info: return ImVec4(0.86f, 0.88f, 0.90f, 1.0f);
    case LogLevel::Warn: return ImVec4(0.98f, 0.78f, 0.30f, 1.0f);
    case LogLevel::Error: return ImVec4(1.00f, 0.42f, 0.40f, 1.0f);
  }
  return ImVec4(1, 1, 1, 1);
}

}  // namespace


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
      std::snprintf(head, sizeof head, "%8.3f %s ", lines_[i].time, log_level_tag(lines_[i].level));
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
      ImGui::TextColored(level_color(l.level), "%s", log_level_tag(l.level));
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
