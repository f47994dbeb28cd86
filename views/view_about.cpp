#include "views/view_about.h"

#include "engine/base/version.h"

namespace pvm::studio {

AboutView::AboutView() : View("About PVM Studio", Slot::Floating, false) {}

void AboutView::draw() {
  if (!is_open()) return;
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(ImVec2(vp->WorkPos.x + vp->WorkSize.x * 0.5f, vp->WorkPos.y + vp->WorkSize.y * 0.4f),
                          ImGuiCond_Appearing, ImVec2(0.5f, 0.5f));
  if (!ImGui::Begin(name().c_str(), open_ptr(),
                    ImGuiWindowFlags_AlwaysAutoResize | ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoSavedSettings)) {
    ImGui::End();
    return;
  }
  ImGui::Text("PVM Studio %s", pvm::version().c_str());
  ImGui::TextDisabled("Research studio for Qwen3-VL with Persistent Visual Memory (PVM).");
  ImGui::Separator();
  if (ImGui::BeginTable("##versions", 2, ImGuiTableFlags_SizingFixedFit)) {
    auto row = [](const char* k, const std::string& v) {
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      ImGui::TextDisabled("%s", k);
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(v.empty() ? "-" : v.c_str());
    };
    row("Dear ImGui", IMGUI_VERSION);
    row("GLFW", glfw_version);
    row("OpenGL", gl_version);
    row("Renderer", gl_renderer);
    row("Source", pvm::source_dir());
    ImGui::EndTable();
  }
  ImGui::Separator();
  ImGui::TextDisabled("The same engine runs headless in the 'pvm' CLI (generate, dilution, train).");
  if (ImGui::Button("Close", ImVec2(ImGui::GetFontSize() * 6, 0))) set_open(false);
  ImGui::End();
}

}  // namespace pvm::studio
