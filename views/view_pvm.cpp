#include "views/view_pvm.h"

#include <algorithm>
#include <cmath>

#include "views/ui_util.h"

namespace pvm::studio {

PvmActivityView::PvmActivityView(StudioContext& ctx)
    : View("PVM activity", Slot::CenterBottom, true),
      ctx_(ctx),
      gate_("pvm_gate"),
      ratio_("pvm_injection_ratio"),
      entropy_("pvm_entropy"),
      lens_("logit_lens") {
  gate_.set_title("|gate| per PVM layer");
  gate_.set_axis_labels("generated token t", "|gate_alpha|");
  ratio_.set_title("injection ratio ||PVM out|| / ||residual||");
  ratio_.set_axis_labels("generated token t", "ratio");
  entropy_.set_title("PVM attention entropy over the visual memory");
  entropy_.set_axis_labels("generated token t", "nats");
  lens_.set_title("logit lens: first layer agreeing with the output");
  lens_.set_axis_labels("generated token t", "layer");
}

void PvmActivityView::rebuild() {
  const UiState& ui = *ctx_.ui;
  for (Plot* p : {&gate_, &ratio_, &entropy_, &lens_}) p->clear_series();
  const SideData& pv = ui.side[1];
  const size_t n = pv.tokens.size();
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = float(i + 1);
  int P = 0;
  for (const auto& t : pv.tokens) P = std::max(P, int(t.pvm_gate.size()));
  for (int j = 0; j < P; ++j) {
    const int layer = j < int(ui.model.pvm_layers.size()) ? ui.model.pvm_layers[j] : j;
    const ImU32 col = plot_ramp(P > 1 ? float(j) / (P - 1) : 0.5f);
    auto series = [&](auto get) {
      PlotSeries s;
      s.name = "PVM @ layer " + std::to_string(layer);
      s.x = x;
      s.y.assign(n, NAN);
      for (size_t i = 0; i < n; ++i)
        if (j < int(pv.tokens[i].pvm_gate.size())) s.y[i] = get(pv.tokens[i]);
      s.y = smooth(s.y, smoothing);
      s.color = col;
      return s;
    };
    gate_.add_series(series([&](const TokenRec& t) { return std::fabs(t.pvm_gate[j]); }));
    ratio_.add_series(series([&](const TokenRec& t) { return t.pvm_ratio[j]; }));
    entropy_.add_series(series([&](const TokenRec& t) { return t.pvm_entropy[j]; }));
  }
  for (int s = 0; s < 2; ++s) {
    const SideData& sd = ui.side[s];
    bool any = false;
    PlotSeries ls;
    ls.name = s ? "PVM" : "baseline";
    for (size_t i = 0; i < sd.tokens.size(); ++i) {
      ls.x.push_back(float(i + 1));
      const int v = sd.tokens[i].lens_first;
      ls.y.push_back(v >= 0 ? float(v) : NAN);
      any |= v >= 0;
    }
    if (!any) continue;
    ls.y = smooth(ls.y, smoothing);
    ls.color = side_color(s);
    ls.thickness = 1.5f;
    lens_.add_series(std::move(ls));
  }
  built_run_ = ui.run_id;
  built_n_[0] = ui.side[0].tokens.size();
  built_n_[1] = ui.side[1].tokens.size();
}

void PvmActivityView::draw() {
  const UiState& ui = *ctx_.ui;
  const float fs = ImGui::GetFontSize();
  ImGui::SetNextItemWidth(fs * 8);
  bool changed = ImGui::SliderInt("##smooth", &smoothing, 1, 257, smoothing > 1 ? "smooth %d" : "no smoothing",
                                  ImGuiSliderFlags_Logarithmic | ImGuiSliderFlags_AlwaysClamp);
  ImGui::SameLine();
  if (ui.model.pvm_layers.empty())
    ImGui::TextDisabled("The model has no PVM blocks: load an adapter (Model tab).");
  else if (ui.side[1].tokens.empty())
    ImGui::TextDisabled("Generate with PVM to see its activity.");
  else
    ImGui::TextDisabled("%zu PVM layers, %zu tokens. Right-click a plot to export it.", ui.model.pvm_layers.size(),
                        ui.side[1].tokens.size());
  const double now = ImGui::GetTime();
  const bool running = ui.side[0].running || ui.side[1].running;
  const bool grown = ui.side[0].tokens.size() != built_n_[0] || ui.side[1].tokens.size() != built_n_[1];
  if (changed || ui.run_id != built_run_ || (grown && (!running || now - built_time_ > 0.25))) {
    rebuild();
    built_time_ = now;
  }
  const std::optional<double> cur = ctx_.sel.token >= 0 ? std::optional<double>(ctx_.sel.token + 1) : std::nullopt;
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float gap = ImGui::GetStyle().ItemSpacing.x;
  const ImVec2 cell(std::floor((avail.x - gap) * 0.5f), std::floor((avail.y - ImGui::GetStyle().ItemSpacing.y) * 0.5f));
  Plot* plots[4] = {&gate_, &ratio_, &entropy_, &lens_};
  for (int i = 0; i < 4; ++i) {
    if (i % 2) ImGui::SameLine();
    plots[i]->set_cursor_x(cur);
    ImGui::BeginChild(i == 0 ? "##g" : i == 1 ? "##r" : i == 2 ? "##e" : "##l", cell, false, ImGuiWindowFlags_NoScrollbar);
    if (i == 3 && plots[i]->series_count() == 0)
      ImGui::TextDisabled("Logit lens off: tick 'logit lens' under Prompt > Probes.");
    plots[i]->draw();
    ImGui::EndChild();
  }
}

}  // namespace pvm::studio
