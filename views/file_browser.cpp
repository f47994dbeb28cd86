#include "engine/base/version.h"
#include "views/file_browser.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "imgui.h"
#include "imgui_stdlib.h"

namespace pvm::studio {
namespace fs = std::filesystem;

std::vector<FileBrowser::Entry> FileBrowser::list(const std::string& dir, const std::vector<std::string>& ext,
                                                  std::string* error) {
  std::vector<Entry> out;
  std::error_code ec;
  fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) {
    if (error) *error = dir + ": " + ec.message();
    return out;
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::error_code e2;
    const bool d = it->is_directory(e2);
    if (!d) {
      if (!ext.empty()) {
        std::string x = it->path().extension().string();
        std::transform(x.begin(), x.end(), x.begin(), [](unsigned char c) { return char(std::tolower(c)); });
        if (std::find(ext.begin(), ext.end(), x) == ext.end()) continue;
      }
    }
    Entry en;
    en.name = name;
    en.dir = d;
    en.size = d ? 0 : it->file_size(e2);
    out.push_back(std::move(en));
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    return a.dir != b.dir ? a.dir : a.name < b.name;
  });
  return out;
}

void FileBrowser::open(std::string title, Mode mode, std::string start, std::vector<std::string> extensions,
                       Accept accept) {
  title_ = std::move(title);
  mode_ = mode;
  ext_ = std::move(extensions);
  accept_ = std::move(accept);
  error_.clear();
  std::error_code ec;
  fs::path p = start.empty() ? fs::current_path(ec) : fs::path(start);
  // Start inside the folder of a given file; a save name is kept in the path field.
  if (fs::is_directory(p, ec) && mode != Mode::Save) {
    go(p.string());
    path_ = p.string();
  } else {
    fs::path parent = p.has_parent_path() ? p.parent_path() : fs::current_path(ec);
    go(fs::is_directory(parent, ec) ? parent.string() : fs::current_path(ec).string());
    path_ = (fs::path(dir_) / p.filename()).string();
  }
  request_ = true;
}

void FileBrowser::go(const std::string& dir) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  dir_ = c.empty() ? dir : c.string();
  error_.clear();
  entries_ = list(dir_, ext_, &error_);
  selected_ = -1;
}

bool FileBrowser::finish(const std::string& path) {
  error_.clear();
  if (!accept_ || accept_(path, &error_)) {
    title_.clear();
    return true;
  }
  return false;
}

void FileBrowser::draw() {
  if (title_.empty()) return;
  const std::string id = title_ + "##file_browser";
  if (request_) {
    ImGui::OpenPopup(id.c_str());
    request_ = false;
  }
  const float fs_ = ImGui::GetFontSize();
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(ImVec2(vp->WorkPos.x + vp->WorkSize.x * 0.5f, vp->WorkPos.y + vp->WorkSize.y * 0.5f),
                          ImGuiCond_Appearing, ImVec2(0.5f, 0.5f));
  ImGui::SetNextWindowSize(ImVec2(std::min(fs_ * 44, vp->WorkSize.x * 0.9f), std::min(fs_ * 30, vp->WorkSize.y * 0.85f)),
                           ImGuiCond_Appearing);
  bool keep = true;
  if (!ImGui::BeginPopupModal(id.c_str(), &keep)) {
    if (!keep) title_.clear();
    return;
  }
  if (ImGui::Button("Up")) go(fs::path(dir_).parent_path().string());
  ImGui::SameLine();
  if (ImGui::Button("Home")) {
    const char* h = std::getenv("HOME");
    go(h && *h ? h : "/");
  }
  ImGui::SameLine();
  if (ImGui::Button("Project")) go(pvm::source_dir());
  ImGui::SameLine();
  ImGui::TextDisabled("%s", dir_.c_str());

  const float footer = ImGui::GetFrameHeightWithSpacing() * (error_.empty() ? 2.2f : 3.2f);
  ImGui::BeginChild("##entries", ImVec2(0, -footer), true);
  bool accept_now = false;
  std::string chosen;
  for (int i = 0; i < int(entries_.size()); ++i) {
    const Entry& e = entries_[i];
    std::string label = (e.dir ? "[dir]  " : "       ") + e.name;
    if (ImGui::Selectable(label.c_str(), selected_ == i, ImGuiSelectableFlags_AllowDoubleClick)) {
      selected_ = i;
      const std::string full = (fs::path(dir_) / e.name).string();
      if (ImGui::IsMouseDoubleClicked(0)) {
        if (e.dir) {
          go(full);
          path_ = mode_ == Mode::Save ? (fs::path(dir_) / fs::path(path_).filename()).string() : dir_;
          break;
        }
        chosen = full, accept_now = true;
      } else if (!e.dir || mode_ == Mode::OpenDir) {
        path_ = full;
      }
    }
    if (!e.dir && ImGui::IsItemHovered() && e.size > 0) {
      ImGui::SameLine(ImGui::GetWindowWidth() - fs_ * 7);
      ImGui::TextDisabled("%.1f MB", double(e.size) / 1e6);
    }
  }
  if (entries_.empty()) ImGui::TextDisabled(ext_.empty() ? "(empty folder)" : "(no matching files here)");
  ImGui::EndChild();

  ImGui::SetNextItemWidth(-fs_ * 12);
  const bool enter = ImGui::InputText("##path", &path_, ImGuiInputTextFlags_EnterReturnsTrue);
  ImGui::SameLine();
  const char* ok = mode_ == Mode::Save ? "Save" : mode_ == Mode::OpenDir ? "Choose folder" : "Open";
  if (ImGui::Button(ok) || enter) chosen = path_, accept_now = true;
  ImGui::SameLine();
  if (ImGui::Button("Cancel") || ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape))) {
    title_.clear();
    ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
    return;
  }
  if (!error_.empty()) ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.42f, 1.0f), "%s", error_.c_str());
  if (accept_now) {
    std::error_code ec;
    // Enter on a folder path navigates there (except when a folder is what we want).
    if (mode_ == Mode::OpenFile && fs::is_directory(chosen, ec)) {
      go(chosen);
    } else if (finish(chosen)) {
      ImGui::CloseCurrentPopup();
    }
  }
  ImGui::EndPopup();
}

}  // namespace pvm::studio
