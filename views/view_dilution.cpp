#include "views/view_dilution.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "views/ui_util.h"
#include "views/vismem_marks.h"

namespace pvm::studio {

DilutionView::DilutionView(StudioContext& ctx) : View("Dilution", Slot::CenterBottom, true), ctx_(ctx), plot_("dilution") {
  plot_.set_title("Visual attention mass vs generated position");
  plot_.set_axis_labels("generated token t", "attention mass on image tokens");
  plot_.overlay = [this](ImDrawList* dl) { draw_invocations(dl); };
}

DilutionCurves DilutionView::dilution_curves(const SideData& sd) {
  size_t layers = 0;
  for (const auto& t : sd.tokens) layers = std::max(layers, t.mass.size());
  DilutionCurves cv{int64_t(layers)};
  for (size_t i = 0; i < sd.tokens.size(); ++i) cv.add(int64_t(i), sd.tokens[i].mass, sd.tokens[i].mass_nosink);
  return cv;
}

void DilutionView::rebuild(bool with_fit) {
  const UiState& ui = *ctx_.ui;
  plot_.clear_series();
  int L = ui.model.layers;
  for (int s = 0; s < kSides && L == 0; ++s)
    if (!ui.side[s].tokens.empty()) L = int(ui.side[s].tokens[0].mass.size());
  memory_series_ = -1;
  if (int(picked.size()) != L) {
    picked.assign(L, false);
    for (int l = 0; l < L; l += std::max(1, L / 4)) picked[l] = true;
  }
  for (int s = 0; s < kSides; ++s) {
    const SideData& sd = ui.side[s];
    built_n_[s] = sd.tokens.size();
    mean_series_[s] = -1;
    if (!show_side[s] || sd.tokens.empty()) continue;
    const size_t n = sd.tokens.size();
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = float(i + 1);
    auto layer_series = [&](int l) {
      std::vector<float> y(n, NAN);
      for (size_t i = 0; i < n; ++i) {
        const auto& m = nosink ? sd.tokens[i].mass_nosink : sd.tokens[i].mass;
        if (l < int(m.size())) y[i] = m[l];
      }
      return y;
    };
    const char* sn = side_name(Side(s));
    // The mean of layers: drawn thick, and what the fit uses. Computed by the engine's analysis,
    // the same code as `pvm dilution` (one answer: the mean over this answer's layers).
    const DilutionCurve mc = dilution_curves(sd).curve(DilutionCurves::kMeanOfLayers, nosink);
    std::vector<float> mean(n, NAN);
    for (size_t k = 0; k < mc.t.size(); ++k) mean[size_t(mc.t[k]) - 1] = float(mc.y[k]);
    if (head_layer >= 0) {
      int H = 0;
      for (const auto& t : sd.tokens)
        if (head_layer < int(t.mass_heads.size())) H = std::max(H, int(t.mass_heads[head_layer].size()));
      for (int h = 0; h < H; ++h) {
        PlotSeries ps;
        ps.name = std::string(sn) + " L" + std::to_string(head_layer) + " h" + std::to_string(h);
        ps.x = x;
        ps.y.assign(n, NAN);
        for (size_t i = 0; i < n; ++i) {
          const auto& mh = sd.tokens[i].mass_heads;
          if (head_layer < int(mh.size()) && h < int(mh[head_layer].size())) ps.y[i] = mh[head_layer][h];
        }
        ps.y = smooth(ps.y, smoothing);
        ps.color = plot_ramp(H > 1 ? float(h) / (H - 1) : 0.5f);
        ps.dashed = s == 0;
        ps.legend = H <= 6;
        plot_.add_series(std::move(ps));
      }
    } else if (layer_mode != Mean) {
      int count = 0;
      for (int l = 0; l < L; ++l) count += layer_mode == All || picked[l];
      for (int l = 0; l < L; ++l) {
        if (layer_mode == Picked && !picked[l]) continue;
        PlotSeries ps;
        ps.name = std::string(sn) + " L" + std::to_string(l);
        ps.x = x;
        ps.y = smooth(layer_series(l), smoothing);
        ps.color = plot_ramp(L > 1 ? float(l) / (L - 1) : 0.5f);
        ps.dashed = s == 0;  // baseline dashed, PVM and VisMem solid
        ps.legend = count <= 6;  // more: explained by the colour note above the plot
        plot_.add_series(std::move(ps));
      }
    }
    PlotSeries ms;
    ms.name = std::string(sn) + " mean of layers";
    ms.x = x;
    ms.y = smooth(mean, smoothing);
    ms.color = side_color(s);
    ms.thickness = 2.5f;
    mean_series_[s] = plot_.add_series(std::move(ms));
    if (s == int(Side::Vismem) && show_memory) {
      std::vector<float> mm = memory_mass_curve(sd.tokens);
      if (std::any_of(mm.begin(), mm.end(), [](float v) { return std::isfinite(v); })) {
        PlotSeries ps;
        ps.name = "VisMem memory mass (latent rows)";
        ps.x = x;
        ps.y = smooth(mm, smoothing);
        ps.color = memory_color("short");
        ps.dashed = true;
        ps.thickness = 2.0f;
        memory_series_ = plot_.add_series(std::move(ps));
      }
    }
    if (with_fit && n >= 3) {
      // At most ~4k points: the fit is a 1-D search, and this runs on the UI thread.
      fit_[s] = fit_dilution(mc, 4096).hyperbolic;
    } else if (n < 3) {
      fit_[s] = HyperbolicFit{};
    }
    if (show_fit && fit_[s].n >= 3) {
      PlotSeries fs;
      char b[128];
      std::snprintf(b, sizeof b, "%s fit %.3g/(t+%.3g), R2 %.2f", sn, fit_[s].c, fit_[s].t0, fit_[s].r2);
      fs.name = b;
      fs.x = x;
      fs.y.resize(n);
      for (size_t i = 0; i < n; ++i) fs.y[i] = float(fit_[s].c / (double(i + 1) + fit_[s].t0));
      fs.color = side_color(s);
      fs.dashed = true;
      fs.thickness = 1.5f;
      plot_.add_series(std::move(fs));
    }
  }
  built_run_ = ui.run_id;
}

void DilutionView::draw() {
  const UiState& ui = *ctx_.ui;
  const float fs = ImGui::GetFontSize();
  bool changed = false;
  const char* modes[] = {"mean of layers", "all layers", "picked layers"};
  ImGui::SetNextItemWidth(fs * 8.5f);
  changed |= ImGui::Combo("##layers", &layer_mode, modes, 3);
  if (layer_mode == Picked) {
    ImGui::SameLine();
    if (ImGui::Button("Pick...")) ImGui::OpenPopup("##pick");
    if (ImGui::BeginPopup("##pick")) {
      for (int l = 0; l < int(picked.size()); ++l) {
        bool v = picked[l];
        if (ImGui::Checkbox(("layer " + std::to_string(l)).c_str(), &v)) picked[l] = v, changed = true;
        if ((l + 1) % 6 != 0 && l + 1 < int(picked.size())) ImGui::SameLine(float((l + 1) % 6) * fs * 6.5f);
      }
      ImGui::EndPopup();
    }
  }
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 7);
  std::string hl = head_layer < 0 ? "heads: off" : "heads of L" + std::to_string(head_layer);
  if (ImGui::BeginCombo("##heads", hl.c_str())) {
    if (ImGui::Selectable("heads: off", head_layer < 0)) head_layer = -1, changed = true;
    for (int l = 0; l < ui.model.layers; ++l)
      if (ImGui::Selectable(("heads of L" + std::to_string(l)).c_str(), head_layer == l)) head_layer = l, changed = true;
    ImGui::EndCombo();
  }
  item_tooltip("Per-head curves of one layer. Needs 'per head' probes (Prompt tab, Probes) in the generation.");
  ImGui::SameLine();
  changed |= ImGui::Checkbox("no sinks", &nosink);
  item_tooltip("Mass without the few visual tokens that soak up attention regardless of content (sink tokens).");
  ImGui::SameLine();
  changed |= ImGui::Checkbox("fit", &show_fit);
  item_tooltip("Least-squares fit of c/(t+t0) to each side's mean of layers (dashed).");
  ImGui::SameLine();
  if (ImGui::Checkbox("log x", &log_x)) plot_.set_x_scale(log_x ? AxisScale::Log10 : AxisScale::Linear);
  ImGui::SameLine();
  if (ImGui::Checkbox("log y", &log_y)) plot_.set_y_scale(log_y ? AxisScale::Log10 : AxisScale::Linear);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 6.5f);
  changed |= ImGui::SliderInt("##smooth", &smoothing, 1, 257, smoothing > 1 ? "smooth %d" : "no smoothing",
                              ImGuiSliderFlags_Logarithmic | ImGuiSliderFlags_AlwaysClamp);
  ImGui::SameLine();
  changed |= ImGui::Checkbox("base", &show_side[0]);
  ImGui::SameLine();
  changed |= ImGui::Checkbox("PVM", &show_side[1]);
  ImGui::SameLine();
  const SideData& vm = ui.side[int(Side::Vismem)];
  if (!vm.tokens.empty() || vm.running) {
    changed |= ImGui::Checkbox("VisMem", &show_side[2]);
    item_tooltip("The VisMem arm: the backbone with PVM off and latent memories inserted where it invokes them "
                 "(markers: cyan short-term, magenta long-term).");
    ImGui::SameLine();
    changed |= ImGui::Checkbox("memory mass", &show_memory);
    item_tooltip("VisMem: the attention of each token on all latent memory rows inserted so far (mean of layers).");
    ImGui::SameLine();
  }
  plot_export_buttons(plot_, "dilution", "dil");

  // Rebuild on new data (throttled while streaming) or changed options.
  const double now = ImGui::GetTime();
  bool running = false, grown = false;
  for (int s = 0; s < kSides; ++s)
    running |= ui.side[s].running, grown |= ui.side[s].tokens.size() != built_n_[s];
  if (changed || ui.run_id != built_run_ || (grown && (!running || now - built_time_ > 0.25))) {
    const bool fit_now = !running || now - fit_time_ > 1.0 || ui.run_id != built_run_ || changed;
    rebuild(fit_now);
    built_time_ = now;
    if (fit_now) fit_time_ = now;
  }
  plot_.set_cursor_x(ctx_.sel.token >= 0 ? std::optional<double>(ctx_.sel.token + 1) : std::nullopt);
  if (plot_.series_count() == 0) {
    ImGui::TextDisabled("No answers yet: generate in the Prompt tab (or open a saved session).");
  } else if (head_layer >= 0 || layer_mode != Mean) {
    ImGui::TextDisabled("%s coloured blue (first) to red (last); baseline dashed, PVM solid; thick: mean of layers",
                        head_layer >= 0 ? "heads" : "layers");
  }
  plot_.draw();
  // Hovering the plot moves the shared token cursor too (unless a token is pinned).
  if (auto hx = plot_.hovered_x(); hx && !ctx_.sel.pinned) {
    size_t longest = 0;
    for (const SideData& sd : ui.side) longest = std::max(longest, sd.tokens.size());
    const int n = int(longest);
    const int t = int(std::lround(*hx)) - 1;
    if (t >= 0 && t < n) ctx_.sel.token = t;
  }
}

}  // namespace pvm::studio

namespace pvm::studio {

// VisMem's invocation points: a thin vertical line in the memory's colour across the plot and a dot
// on the VisMem mean curve (and on the memory-mass curve) at the start token's position.
void DilutionView::draw_invocations(ImDrawList* dl) {
  const int vs = int(Side::Vismem);
  const SideData& sd = ctx_.ui->side[vs];
  if (!show_side[vs] || mean_series_[vs] < 0 || sd.tokens.empty()) return;
  const ImVec2 a0 = plot_.area_min(), a1 = plot_.area_max();
  const PlotSeries& mean = plot_.series(size_t(mean_series_[vs]));
  for (const InvocationMark& m : invocation_marks(sd.tokens)) {
    const double x = m.token + 1;
    const ImU32 col = memory_color(m.type);
    const ImVec2 top = plot_.to_screen(x, 1.0);
    if (!std::isfinite(top.x) || top.x < a0.x || top.x > a1.x) continue;
    dl->AddLine(ImVec2(top.x, a0.y), ImVec2(top.x, a1.y), memory_color(m.type, 90), 1.0f);
    dl->AddTriangleFilled(ImVec2(top.x - 4, a0.y), ImVec2(top.x + 4, a0.y), ImVec2(top.x, a0.y + 7), col);
    for (int si : {mean_series_[vs], memory_series_}) {
      if (si < 0) continue;
      const PlotSeries& ps = si == mean_series_[vs] ? mean : plot_.series(size_t(si));
      // the start token's own value, else the next one recorded (the end token has none)
      for (size_t i = size_t(m.token); i < ps.y.size() && i < size_t(m.token) + 3; ++i)
        if (std::isfinite(ps.y[i])) {
          const ImVec2 p = plot_.to_screen(ps.x[i], ps.y[i]);
          if (std::isfinite(p.y)) dl->AddCircleFilled(p, 4.0f, col), dl->AddCircle(p, 4.5f, IM_COL32(0, 0, 0, 200));
          break;
        }
    }
  }
}

}  // namespace pvm::studio
