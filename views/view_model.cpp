#include "engine/base/version.h"
#include "views/view_model.h"

#include "imgui_stdlib.h"
#include "views/ui_util.h"
#include "engine/base/log_sink.h"

namespace pvm::studio {
namespace {
const char* kDevices[] = {"cpu", "cuda", "auto"};
const char* kDtypes[] = {"auto", "f32", "bf16", "f16"};
}  // namespace

ModelView::ModelView(StudioContext& ctx) : View("Model", Slot::LeftBottom, true), ctx_(ctx) {}

bool ModelView::load(const std::string& dir, const std::string& adapter) {
  LoadRequest r;
  r.dir = dir;
  r.device = kDevices[device_];
  r.dtype = kDtypes[dtype_];
  r.adapter = adapter;
  std::string why;
  if (!ctx_.engine->load_model(r, &why)) {
    log_error("%s", why.c_str());
    return false;
  }
  dir_ = dir;
  if (!adapter.empty()) adapter_ = adapter;
  return true;
}

bool ModelView::load_adapter(const std::string& dir) {
  std::string why;
  if (!ctx_.engine->load_adapter(dir, &why)) {
    log_error("%s", why.c_str());
    return false;
  }
  adapter_ = dir;
  return true;
}

void ModelView::draw() {
  const UiState& ui = *ctx_.ui;
  const ModelInfo& m = ui.model;
  const bool busy = ctx_.engine->busy();
  const float fs = ImGui::GetFontSize();

  ImGui::TextDisabled("Checkpoint folder (empty: the default model)");
  ImGui::SetNextItemWidth(-fs * 5.5f);
  ImGui::InputTextWithHint("##dir", "assets/default-model", &dir_);
  ImGui::SameLine();
  if (ImGui::Button("Browse##model"))
    browser_.open("Open model folder", FileBrowser::Mode::OpenDir, dir_.empty() ? (pvm::source_dir() + "/assets") : dir_, {},
                  [this](const std::string& p, std::string*) {
                    dir_ = p;
                    return true;
                  });
  ImGui::SetNextItemWidth(fs * 5);
  ImGui::Combo("device", &device_, kDevices, 3);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 5);
  ImGui::Combo("dtype", &dtype_, kDtypes, 4);
  ImGui::BeginDisabled(busy);
  if (ImGui::Button(m.loaded ? "Reload" : "Load")) load(dir_);
  ImGui::SameLine();
  if (ImGui::Button("Random tiny model")) load(kRandomModel);
  item_tooltip("An in-memory qwen3-vl-tiny with random weights and two PVM layers: the pipeline is real, the words "
               "are noise. For trying the studio without a checkpoint.");
  ImGui::EndDisabled();

  if (ui.status.state == EngineStatus::Loading) {
    ImGui::ProgressBar(ui.status.progress >= 0 ? ui.status.progress : 0.0f, ImVec2(-1, 0),
                       ui.status.progress >= 0 ? nullptr : "loading ...");
    ImGui::TextWrapped("%s", ui.status.message.c_str());
  }

  ImGui::Separator();
  ImGui::TextDisabled("PVM adapter folder");
  item_tooltip("A folder with adapter.safetensors + adapter_config.json, e.g. runs/<run>/final of a PVM-only training run.");
  ImGui::SetNextItemWidth(-fs * 5.5f);
  ImGui::InputTextWithHint("##adapter", "runs/<run>/final", &adapter_);
  ImGui::SameLine();
  if (ImGui::Button("Browse##adapter"))
    browser_.open("Open PVM adapter folder", FileBrowser::Mode::OpenDir, adapter_.empty() ? pvm::source_dir() : adapter_, {},
                  [this](const std::string& p, std::string*) {
                    adapter_ = p;
                    return true;
                  });
  ImGui::BeginDisabled(busy || !m.loaded);
  ImGui::BeginDisabled(adapter_.empty());
  if (ImGui::Button("Load adapter")) load_adapter(adapter_);
  ImGui::EndDisabled();
  ImGui::SameLine();
  ImGui::BeginDisabled(m.pvm_layers.empty());
  if (ImGui::Button("Remove PVM blocks")) {
    std::string why;
    if (!ctx_.engine->load_adapter("", &why)) log_error("%s", why.c_str());
  }
  ImGui::EndDisabled();
  ImGui::EndDisabled();
  ImGui::Checkbox("generate with PVM", &ctx_.draft.pvm);
  item_tooltip("The PVM side of the comparison: the same backbone with its PVM blocks switched on.");
  ImGui::SameLine();
  ImGui::Checkbox("baseline", &ctx_.draft.baseline);
  item_tooltip("The baseline side: the same loaded backbone with the PVM blocks switched off.");

  ImGui::Separator();
  if (!m.loaded) {
    ImGui::TextDisabled("No model loaded.");
  } else {
    if (!m.note.empty()) {
      ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(0.98f, 0.78f, 0.30f, 1.0f));
      ImGui::TextWrapped("%s", m.note.c_str());
      ImGui::PopStyleColor();
    }
    if (ImGui::BeginTable("##info", 2, ImGuiTableFlags_SizingFixedFit | ImGuiTableFlags_RowBg)) {
      auto row = [](const char* k, const std::string& v) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::TextDisabled("%s", k);
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(v.c_str());
      };
      row("model", m.dir);
      row("device / dtype", m.device + " / " + m.dtype);
      row("decoder", std::to_string(m.layers) + " layers, " + std::to_string(m.heads) + " heads, hidden " +
                         std::to_string(m.hidden));
      std::string pl;
      for (int l : m.pvm_layers) pl += (pl.empty() ? "" : ", ") + std::to_string(l);
      row("PVM layers", pl.empty() ? "none (baseline only)" : pl);
      if (!m.adapter.empty()) row("adapter", m.adapter);
      for (const char* part : {"vision", "text", "lm_head", "pvm", "total"}) {
        auto it = m.params.find(part);
        if (it != m.params.end()) row((std::string("params: ") + part).c_str(), format_count(it->second));
      }
      row("weights in memory", format_bytes(m.weight_bytes));
      row("process memory", format_bytes(m.rss_bytes));
      ImGui::EndTable();
    }
  }
  browser_.draw();
}

}  // namespace pvm::studio
