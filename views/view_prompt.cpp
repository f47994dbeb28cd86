#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/version.h"
#include "views/view_prompt.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "imgui_stdlib.h"
#include "engine/base/scenes.h"
#include "views/ui_util.h"
#include "engine/base/log_sink.h"

namespace pvm::studio {
namespace fs = std::filesystem;

std::vector<std::string> list_presets(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (it->path().extension() == ".txt") out.push_back(it->path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

bool read_preset(const std::string& dir, const std::string& name, std::string* text, std::string* error) {
  const std::string path = dir + "/" + name + ".txt";
  try {
    *text = read_file_to_string(path, 1 << 20, "prompt preset");
  } catch (const Error& e) {
    *error = e.what();
    return false;
  }
  while (!text->empty() && (text->back() == '\n' || text->back() == '\r' || text->back() == ' ')) text->pop_back();
  return true;
}

PromptView::PromptView(StudioContext& ctx)
    : View("Prompt", Slot::LeftBottom, true), ctx_(ctx), dir_((pvm::source_dir() + "/assets/prompts")) {
  presets_ = list_presets(dir_);
  if (std::find(presets_.begin(), presets_.end(), "blind_painter") != presets_.end()) use_preset("blind_painter");
}

bool PromptView::use_preset(const std::string& name) {
  std::string text, err;
  if (name == "scene_description") {
    ctx_.draft.prompt = scenes::describe_prompt();
    preset = name;
    return true;
  }
  if (!read_preset(dir_, name, &text, &err)) {
    log_error("%s", err.c_str());
    return false;
  }
  ctx_.draft.prompt = text;
  preset = name;
  return true;
}

bool PromptView::generate() {
  std::string why;
  if (!ctx_.engine->generate(ctx_.draft, &why)) {
    log_error("%s", why.c_str());
    return false;
  }
  ctx_.sel = Selection{};
  return true;
}

void PromptView::draw() {
  GenerateSettings& d = ctx_.draft;
  const float fs = ImGui::GetFontSize();
  const bool busy = ctx_.engine->busy();
  const bool generating = ctx_.ui->status.state == EngineStatus::Generating;

  // Generate / Stop first: always visible, even in a short panel.
  ImGui::BeginDisabled(busy || !ctx_.ui->model.loaded);
  if (ImGui::Button("Generate", ImVec2(fs * 6.5f, 0))) generate();
  ImGui::EndDisabled();
  item_tooltip(!ctx_.ui->model.loaded ? "Load a model first (Model tab)."
                                      : ctx_.ui->model.vismem.empty()
                                          ? "Generate baseline and PVM answers with the same seed (Ctrl+Enter)."
                                          : "Generate baseline, PVM and VisMem answers with the same seed (Ctrl+Enter).");
  ImGui::SameLine();
  ImGui::BeginDisabled(!generating);
  if (ImGui::Button("Stop", ImVec2(fs * 4.5f, 0))) ctx_.engine->stop();
  ImGui::EndDisabled();
  ImGui::SameLine();
  ImGui::SetNextItemWidth(-fs * 7.5f);
  ImGui::DragInt("max new tokens", &d.max_new_tokens, 4.0f, 1, 16384, "%d", ImGuiSliderFlags_AlwaysClamp);
  if (ImGui::GetIO().KeyCtrl && ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Enter)) && !busy && ctx_.ui->model.loaded)
    generate();

  ImGui::SetNextItemWidth(fs * 12);
  if (ImGui::BeginCombo("preset", preset.empty() ? "(free text)" : preset.c_str())) {
    for (const std::string& p : presets_)
      if (ImGui::Selectable(p.c_str(), p == preset)) use_preset(p);
    if (ImGui::Selectable("scene_description", preset == "scene_description")) use_preset("scene_description");
    ImGui::EndCombo();
  }
  help_marker("Presets are the text files in assets/prompts. Editing the text keeps it as free text.");
  ImGui::TextDisabled("Prompt");
  if (ImGui::InputTextMultiline("##prompt", &d.prompt, ImVec2(-1, ImGui::GetTextLineHeight() * 6)))
    preset.clear();
  ImGui::TextDisabled("System prompt (optional)");
  ImGui::InputTextMultiline("##system", &d.system, ImVec2(-1, ImGui::GetTextLineHeight() * 2.5f));

  if (ImGui::CollapsingHeader("Sampling", ImGuiTreeNodeFlags_DefaultOpen)) {
    const float w = fs * 6;
    ImGui::SetNextItemWidth(w);
    ImGui::DragFloat("temperature", &d.sampling.temperature, 0.01f, 0.0f, 5.0f, "%.2f", ImGuiSliderFlags_AlwaysClamp);
    item_tooltip("0 = greedy. Above 0 the two sides sample with the same seed.");
    ImGui::SameLine();
    ImGui::SetNextItemWidth(w);
    ImGui::InputScalar("seed", ImGuiDataType_S64, &d.sampling.seed);
    ImGui::SetNextItemWidth(w);
    ImGui::DragFloat("top-p", &d.sampling.top_p, 0.005f, 0.01f, 1.0f, "%.3f", ImGuiSliderFlags_AlwaysClamp);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(w);
    ImGui::DragInt("top-k", &d.sampling.top_k, 1.0f, 0, 1000, "%d", ImGuiSliderFlags_AlwaysClamp);
    ImGui::SetNextItemWidth(w);
    ImGui::DragFloat("min-p", &d.sampling.min_p, 0.005f, 0.0f, 1.0f, "%.3f", ImGuiSliderFlags_AlwaysClamp);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(w);
    ImGui::DragFloat("rep. penalty", &d.sampling.repetition_penalty, 0.005f, 0.5f, 2.0f, "%.3f",
                     ImGuiSliderFlags_AlwaysClamp);
  }
  if (ImGui::CollapsingHeader("Dilution interventions")) {
    // The probes of the dilution question (experiments/history_window): does the answer come back
    // when the image gets its attention back, or when the answer's history is cut to what training saw?
    const float w = fs * 6;
    ImGui::SetNextItemWidth(w);
    ImGui::DragFloat("image attention x", &d.visual_scale, 0.01f, 0.01f, 100.0f, "%.2f",
                     ImGuiSliderFlags_AlwaysClamp | ImGuiSliderFlags_Logarithmic);
    item_tooltip("Every generated token's attention on the image x this factor, in every layer (the prompt is read "
                 "as without it). 1 = off. As `pvm generate --visual-scale`.");
    ImGui::SameLine();
    ImGui::SetNextItemWidth(w);
    ImGui::DragFloat("restore K", &d.visual_restore, 0.01f, -4.0f, 4.0f, "%.2f", ImGuiSliderFlags_AlwaysClamp);
    item_tooltip("Length-matched: the token that sees n keys (P of them the prompt) gets its image attention "
                 "x (n/P)^K, giving back what the answer's length took; K < 0 makes the image fade faster. 0 = off. As "
                 "`--visual-restore`.");
    ImGui::SetNextItemWidth(w);
    ImGui::DragInt("history window", &d.history_window, 1.0f, 0, 1 << 20, "%d", ImGuiSliderFlags_AlwaysClamp);
    item_tooltip("Each generated token sees the prompt and only the last N generated tokens: the default model "
                 "was trained with 32, so 32 shows it as trained (its late objects come back). 0 = off (full "
                 "attention). As `--history-window`.");
    ImGui::SameLine();
    if (ImGui::SmallButton("off")) d.visual_scale = 1.0f, d.visual_restore = 0.0f, d.history_window = 0;
    if (!ctx_.ui->model.vismem.empty()) ImGui::TextDisabled("On the baseline and PVM arms; the VisMem arm runs without.");
  }
  if (ImGui::CollapsingHeader("Probes and order")) {
    ImGui::Checkbox("stop at the answer's end", &d.stop_at_eos);
    item_tooltip("Off: every side runs to max new tokens, past its end-of-answer token, as `pvm dilution` measures "
                 "(the visual mass over the whole length).");
    ImGui::Checkbox("interleave sides", &d.interleave);
    item_tooltip("On: the sides (baseline, PVM, VisMem) take turns token by token, so they grow together. Off: one "
                 "after the other.");
    ImGui::Checkbox("heatmaps", &d.heatmap);
    item_tooltip("Record each token's attention on every visual token (Image view overlay). Turned off "
                 "automatically when it would not fit in memory.");
    ImGui::SameLine();
    ImGui::Checkbox("per head", &d.per_head);
    item_tooltip("Record the visual mass of every head (Dilution view: per-head curves).");
    ImGui::SameLine();
    ImGui::Checkbox("logit lens", &d.logit_lens);
    item_tooltip("Project every layer's hidden state to the vocabulary (PVM activity view: convergence layer). "
                 "Costs one vocabulary projection per layer and token.");
  }
}

}  // namespace pvm::studio
