#include "engine/base/version.h"
#include "views/view_model.h"

#include <algorithm>
#include <cstdio>

#include "imgui_stdlib.h"
#include "views/ui_util.h"
#include "engine/base/log_sink.h"

namespace pvm::studio {
namespace {
const char* kDevices[] = {"cpu", "cuda", "auto"};
const char* kDtypes[] = {"auto", "f32", "bf16", "f16"};
}  // namespace

ModelView::ModelView(StudioContext& ctx) : View("Model", Slot::LeftBottom, true), ctx_(ctx) {}

bool ModelView::load(const std::string& dir, const std::string& adapter, std::string* why_out, const std::string& vismem) {
  LoadRequest r;
  r.dir = dir;
  r.device = kDevices[device_];
  r.dtype = kDtypes[dtype_];
  r.adapter = adapter;
  r.vismem = vismem;
  r.cancel_at = cancel_at;
  std::string why;
  if (!ctx_.engine->load_model(r, &why)) {
    log_error("%s", why.c_str());
    if (why_out) *why_out = why;
    return false;
  }
  dir_ = dir;
  if (!adapter.empty()) adapter_ = adapter;
  if (!vismem.empty()) vismem_ = vismem;
  return true;
}

bool ModelView::load_vismem(const std::string& dir) {
  std::string why;
  if (!ctx_.engine->load_vismem(dir, &why)) {
    log_error("%s", why.c_str());
    return false;
  }
  if (!dir.empty()) vismem_ = dir;
  return true;
}

void ModelView::draw_vismem() {
  const ModelInfo& m = ctx_.ui->model;
  const float fs = ImGui::GetFontSize();
  ImGui::TextDisabled("VisMem adapter folder");
  item_tooltip("A VisMem adapter (adapter_config.json with adapter_type \"vismem\"), e.g. from `pvm init-vismem --out DIR` "
               "or runs/<run>/final of `pvm train vismem`. With one loaded, Generate adds a third arm: the backbone "
               "with PVM off and latent memories (docs/VISMEM.md).");
  ImGui::SetNextItemWidth(-fs * 5.5f);
  ImGui::InputTextWithHint("##vismem", "runs/<run>/final", &vismem_);
  ImGui::SameLine();
  if (ImGui::Button("Browse##vismem"))
    browser_.open("Open VisMem adapter folder", FileBrowser::Mode::OpenDir, vismem_.empty() ? pvm::source_dir() : vismem_, {},
                  [this](const std::string& p, std::string*) {
                    vismem_ = p;
                    return true;
                  });
  ImGui::BeginDisabled(ctx_.engine->busy() || !m.loaded);
  ImGui::BeginDisabled(vismem_.empty());
  if (ImGui::Button("Load VisMem")) load_vismem(vismem_);
  ImGui::EndDisabled();
  ImGui::SameLine();
  ImGui::BeginDisabled(m.vismem.empty());
  if (ImGui::Button("Remove VisMem")) load_vismem("");
  ImGui::EndDisabled();
  ImGui::EndDisabled();
  GenerateSettings& d = ctx_.draft;
  ImGui::Checkbox("generate with VisMem", &d.vismem);
  item_tooltip("The third arm of Compare and Dilution (when an adapter is loaded): same prompt and seed, PVM off.");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 6.5f);
  int mode = d.vismem_invoke == "separators" ? 1 : 0;
  const char* modes[] = {"model", "separators"};
  if (ImGui::Combo("invoke", &mode, modes, 2)) d.vismem_invoke = modes[mode];
  item_tooltip("model: a memory is formed when the model emits a start token. separators: after a separator the engine "
               "makes the next token a start token with probability p (stage-1 invocation).");
  ImGui::SetNextItemWidth(fs * 6.5f);
  ImGui::BeginDisabled(mode == 0);
  ImGui::SliderFloat("p", &d.vismem_p, 0.0f, 1.0f, "%.2f", ImGuiSliderFlags_AlwaysClamp);
  ImGui::EndDisabled();
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 5);
  if (ImGui::InputInt("max memories", &d.vismem_max)) d.vismem_max = std::clamp(d.vismem_max, 0, 1 << 20);
}

bool ModelView::select(const std::string& dir) {
  dir_ = dir;
  inspected_ = dir;
  edited_at_ = -1;
  LoadRequest r;
  r.dir = dir;
  r.device = kDevices[device_];
  r.dtype = kDtypes[dtype_];
  std::string why;
  if (!ctx_.engine->inspect_model(r, &why)) {
    log_error("%s", why.c_str());  // the status line shows it: e.g. no config.json (not a checkpoint)
    return false;
  }
  return true;
}

void ModelView::draw_plan() {
  const LoadPlan& p = ctx_.ui->plan;
  if (p.dir.empty() || p.dir != dir_) return;
  if (!p.ready) {
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.45f, 0.42f, 1.0f));
    ImGui::TextWrapped("Cannot load: %s", p.error.c_str());
    ImGui::PopStyleColor();
    return;
  }
  ImGui::TextWrapped("%s", p.summary.c_str());
  ImGui::TextDisabled("on disk %s; as %s on %s:", format_bytes(p.file_bytes).c_str(), p.dtype.c_str(), p.device.c_str());
  // Need against have: one bar, full = what the machine has free.
  const float frac = p.available_bytes > 0 ? float(double(p.need_bytes) / double(p.available_bytes)) : 0.0f;
  char over[256];
  std::snprintf(over, sizeof over, "needs %s of %s available", format_bytes(p.need_bytes).c_str(),
                p.available_bytes >= 0 ? format_bytes(p.available_bytes).c_str() : "(unknown)");
  const ImVec4 col = p.fits() ? ImVec4(0.30f, 0.70f, 0.40f, 1.0f) : ImVec4(0.90f, 0.30f, 0.28f, 1.0f);
  ImGui::PushStyleColor(ImGuiCol_PlotHistogram, col);
  ImGui::ProgressBar(std::min(frac, 1.0f), ImVec2(-1, 0), over);
  ImGui::PopStyleColor();
  item_tooltip(("weights " + format_bytes(p.weight_bytes) + " + KV cache " + format_bytes(p.kv_bytes) + " for " +
                std::to_string(p.context) + " tokens + working memory (engine/memory_estimate.h)")
                   .c_str());
  if (!p.fits()) {
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.45f, 0.42f, 1.0f));
    ImGui::TextWrapped("Does not fit in free memory: try bf16, or close other programs.");
    ImGui::PopStyleColor();
  }
}

void ModelView::draw_load_progress() {
  const LoadProgress& lp = ctx_.ui->load;
  const bool loading = ctx_.ui->status.state == EngineStatus::Loading && lp.state == "loading";
  if (lp.state.empty() || lp.state == "failed") return;  // a failure is in the status line and the log
  if (lp.state == "loaded" && lp.total_bytes == 0) return;  // the in-memory random model reads no file
  char over[256];
  if (lp.state == "loaded")
    std::snprintf(over, sizeof over, "loaded %s in %.1f s", format_bytes(lp.total_bytes).c_str(), lp.elapsed_s);
  else
    std::snprintf(over, sizeof over, "%s%.0f%%  %s / %s", lp.state == "cancelled" ? "cancelled at " : "",
                  100.0 * lp.fraction, format_bytes(lp.done_bytes).c_str(), format_bytes(lp.total_bytes).c_str());
  const float fs = ImGui::GetFontSize();
  ImGui::ProgressBar(lp.fraction, ImVec2(loading ? -fs * 5 : -1, 0), over);
  if (loading) {
    ImGui::SameLine();
    if (ImGui::Button("Cancel##load")) ctx_.engine->stop();
    item_tooltip("Stops loading at the next block of weights; no model is loaded then.");
  }
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
  if (ImGui::InputTextWithHint("##dir", "assets/default-model", &dir_)) edited_at_ = ImGui::GetTime();
  ImGui::SameLine();
  if (ImGui::Button("Browse##model"))
    browser_.open("Open model folder", FileBrowser::Mode::OpenDir, dir_.empty() ? (pvm::source_dir() + "/assets") : dir_, {},
                  [this](const std::string& p, std::string*) {
                    select(p);
                    return true;
                  });
  // A typed folder is inspected once typing stops (and the worker is free).
  if (edited_at_ >= 0 && ImGui::GetTime() - edited_at_ > 0.6 && !busy && dir_ != inspected_) {
    if (!dir_.empty())
      select(dir_);
    else
      edited_at_ = -1, inspected_.clear();
  }
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

  draw_plan();
  draw_load_progress();
  if (ui.status.state == EngineStatus::Loading) ImGui::TextWrapped("%s", ui.status.message.c_str());

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
  draw_vismem();

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
      row("VisMem", m.vismem.empty() ? "none" : m.vismem + " (" + m.vismem_summary + ")");
      for (const char* part : {"vision", "text", "lm_head", "pvm", "vismem", "total"}) {
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
