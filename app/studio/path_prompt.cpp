#include "app/studio/path_prompt.h"

#include "imgui.h"
#include "imgui_stdlib.h"

namespace pvm::studio {

void PathPrompt::open(std::string title, std::string hint, std::string initial, Accept accept) {
  title_ = std::move(title);
  hint_ = std::move(hint);
  path_ = std::move(initial);
  accept_ = std::move(accept);
  error_.clear();
  request_ = true;
  focus_ = true;
}

void PathPrompt::draw() {
  if (title_.empty()) return;
  const std::string id = title_ + "##path_prompt";
  if (request_) {
    ImGui::OpenPopup(id.c_str());
    request_ = false;
  }
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(ImVec2(vp->WorkPos.x + vp->WorkSize.x * 0.5f, vp->WorkPos.y + vp->WorkSize.y * 0.35f),
                          ImGuiCond_Appearing, ImVec2(0.5f, 0.5f));
  if (!ImGui::BeginPopupModal(id.c_str(), nullptr, ImGuiWindowFlags_AlwaysAutoResize)) return;
  ImGui::TextUnformatted(hint_.c_str());
  if (focus_) {
    ImGui::SetKeyboardFocusHere();
    focus_ = false;
  }
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 36);
  bool enter = ImGui::InputText("##path", &path_, ImGuiInputTextFlags_EnterReturnsTrue);
  if (!error_.empty()) ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.42f, 1.0f), "%s", error_.c_str());
  const float bw = ImGui::GetFontSize() * 6;
  if (ImGui::Button("OK", ImVec2(bw, 0)) || enter) {
    error_.clear();
    if (accept_ && accept_(path_, &error_)) {
      ImGui::CloseCurrentPopup();
      title_.clear();
    }
  }
  ImGui::SameLine();
  if (ImGui::Button("Cancel", ImVec2(bw, 0)) || ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape))) {
    ImGui::CloseCurrentPopup();
    title_.clear();
  }
  ImGui::EndPopup();
}

}  // namespace pvm::studio
