#include "views/view_dilution_demo.h"

#include <cmath>
#include <cstdint>

#include "imgui_stdlib.h"
#include "views/view_log.h"

namespace pvm::studio {
namespace {

// Deterministic noise in [-1, 1] (the demo must look the same in every screenshot).
float hash_noise(uint32_t a, uint32_t b) {
  uint32_t h = a * 0x9E3779B1u ^ (b + 0x7F4A7C15u) * 0x85EBCA77u;
  h ^= h >> 15;
  h *= 0x2C1B3C6Du;
  h ^= h >> 12;
  return float(h & 0xFFFFFF) / float(0x7FFFFF) - 1.0f;
}

}  // namespace

DilutionDemoView::DilutionDemoView() : View("Dilution (demo)", Slot::Main, true), plot_("dilution_demo") {
  plot_.set_title("Attention to image tokens vs. position  -  DEMO: synthetic c/(t+t0), not model output");
  plot_.set_axis_labels("token position t", "attention share on image (demo)");
  plot_.set_x_scale(log_x_ ? AxisScale::Log10 : AxisScale::Linear);
  plot_.set_y_scale(log_y_ ? AxisScale::Log10 : AxisScale::Linear);
  build_data();
}

void DilutionDemoView::build_data() {
  std::vector<float> t(kPoints);
  for (int i = 0; i < kPoints; ++i) t[i] = float(i + 1);
  for (int l = 0; l < kLayers; ++l) {
    // Deeper layers hold on to the image longer (larger t0) but start lower.
    const double t0 = 12.0 * std::pow(1.14, l);
    const double c = t0 * (0.92 - 0.018 * l);
    PlotSeries s;
    s.name = "layer " + std::to_string(l);
    s.x = t;
    s.y.resize(kPoints);
    for (int i = 0; i < kPoints; ++i)
      s.y[i] = float(c / (t[i] + t0) * (1.0 + 0.03 * hash_noise(uint32_t(l), uint32_t(i))));
    s.color = plot_ramp(float(l) / (kLayers - 1));
    plot_.add_series(std::move(s));
  }
  PlotSeries ref;  // what no visual memory at all would look like
  ref.name = "reference 8/t";
  ref.x = t;
  ref.y.resize(kPoints);
  for (int i = 0; i < kPoints; ++i) ref.y[i] = float(8.0 / t[i]);
  ref.color = IM_COL32(235, 235, 235, 255);
  ref.dashed = true;
  ref.thickness = 2.0f;
  plot_.add_series(std::move(ref));
}

void DilutionDemoView::set_demo_cursor(double x) {
  cursor_on_ = std::isfinite(x);
  if (cursor_on_) cursor_ = float(x);
  plot_.set_cursor_x(cursor_on_ ? std::optional<double>(x) : std::nullopt);
}

void DilutionDemoView::draw() {
  if (!is_open()) return;
  if (!ImGui::Begin(name().c_str(), open_ptr())) {
    ImGui::End();
    return;
  }
  ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.78f, 0.30f, 1.0f));
  ImGui::TextWrapped("DEMO DATA - the engine is not connected yet. Synthetic c/(t+t0) curves, %d layers x %d "
                     "positions. Wheel: zoom (over an axis: that axis only), drag: pan, double-click: fit, "
                     "right-click: menu, legend: toggle.",
                     kLayers, kPoints);
  ImGui::PopStyleColor();

  if (ImGui::Checkbox("log x", &log_x_)) plot_.set_x_scale(log_x_ ? AxisScale::Log10 : AxisScale::Linear);
  ImGui::SameLine();
  if (ImGui::Checkbox("log y", &log_y_)) plot_.set_y_scale(log_y_ ? AxisScale::Log10 : AxisScale::Linear);
  ImGui::SameLine();
  if (ImGui::Checkbox("token cursor", &cursor_on_)) set_demo_cursor(cursor_on_ ? cursor_ : NAN);
  if (cursor_on_) {
    ImGui::SameLine();
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 12);
    if (ImGui::SliderFloat("##cursor", &cursor_, 1.0f, float(kPoints), "t = %.0f", ImGuiSliderFlags_Logarithmic))
      set_demo_cursor(cursor_);
  }
  ImGui::SameLine();
  ImGui::TextDisabled("|");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 10);
  ImGui::InputText("##export", &export_base_);
  ImGui::SameLine();
  if (ImGui::Button("CSV")) {
    std::string err, path = export_base_ + ".csv";
    if (plot_.save_csv(path, &err))
      log_info("%s: CSV written (%d series x %d points)", path.c_str(), kLayers + 1, kPoints);
    else
      log_error("%s", err.c_str());
  }
  ImGui::SameLine();
  if (ImGui::Button("PNG")) plot_.request_png(export_base_ + ".png");

  const PlotStats& st = plot_.stats();
  ImGui::SameLine();
  ImGui::TextDisabled("%zu pts -> %zu drawn", st.points_total, st.points_drawn);

  plot_.draw();
  ImGui::End();
}

}  // namespace pvm::studio
