#include "views/ui_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "views/plot.h"
#include "engine/base/log_sink.h"

namespace pvm::studio {

ImU32 side_color(int side, int alpha) {
  return side == 0   ? IM_COL32(150, 160, 175, alpha)  // baseline: neutral grey-blue
         : side == 1 ? IM_COL32(255, 150, 40, alpha)   // PVM: orange
                     : IM_COL32(90, 200, 120, alpha);  // VisMem: green
}

ImU32 memory_color(const std::string& type, int alpha) {
  return type == "long" ? IM_COL32(235, 90, 220, alpha)   // long-term: magenta
                        : IM_COL32(60, 200, 245, alpha);  // short-term: cyan
}

ImU32 heat_color(float t, float alpha) {
  t = std::clamp(std::isfinite(t) ? t : 0.0f, 0.0f, 1.0f);
  // Piecewise-linear "turbo-like" ramp; readable over photos and on the dark theme.
  static const float k[5][3] = {{0.10f, 0.15f, 0.55f}, {0.10f, 0.65f, 0.95f}, {0.35f, 0.95f, 0.45f},
                                {1.00f, 0.85f, 0.15f}, {0.95f, 0.20f, 0.10f}};
  const float x = t * 4.0f;
  const int i = std::min(3, int(x));
  const float f = x - float(i);
  float c[3];
  for (int j = 0; j < 3; ++j) c[j] = k[i][j] * (1 - f) + k[i + 1][j] * f;
  return ImGui::ColorConvertFloat4ToU32(ImVec4(c[0], c[1], c[2], alpha));
}

std::string format_bytes(int64_t b) {
  char s[32];
  const double v = double(b);
  if (v >= 1e9)
    std::snprintf(s, sizeof s, "%.2f GB", v / 1e9);
  else if (v >= 1e6)
    std::snprintf(s, sizeof s, "%.1f MB", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(s, sizeof s, "%.1f kB", v / 1e3);
  else
    std::snprintf(s, sizeof s, "%lld B", (long long)b);
  return s;
}

std::string format_count(int64_t n) {
  std::string d = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return n < 0 ? "-" + out : out;
}

void help_marker(const char* text) {
  ImGui::SameLine();
  ImGui::TextDisabled("(?)");
  item_tooltip(text);
}

void item_tooltip(const char* text) {
  if (ImGui::IsItemHovered(ImGuiHoveredFlags_AllowWhenDisabled)) {
    ImGui::BeginTooltip();
    ImGui::PushTextWrapPos(ImGui::GetFontSize() * 30);
    ImGui::TextUnformatted(text);
    ImGui::PopTextWrapPos();
    ImGui::EndTooltip();
  }
}

void plot_export_buttons(Plot& plot, const std::string& base, const char* id) {
  ImGui::PushID(id);
  if (ImGui::SmallButton("CSV")) {
    std::string err;
    if (plot.save_csv(base + ".csv", &err))
      log_info("%s.csv written", base.c_str());
    else
      log_error("%s", err.c_str());
  }
  item_tooltip(("Save the plot's data as " + base + ".csv (right-click the plot for another path)").c_str());
  ImGui::SameLine();
  if (ImGui::SmallButton("PNG")) plot.request_png(base + ".png");
  item_tooltip(("Save the plot as " + base + ".png").c_str());
  ImGui::PopID();
}

std::vector<float> smooth(const std::vector<float>& y, int window) {
  if (window <= 1 || y.size() < 2) return y;
  const int n = int(y.size()), h = window / 2;
  // Prefix sums over finite values and their count.
  std::vector<double> s(n + 1, 0.0);
  std::vector<int> c(n + 1, 0);
  for (int i = 0; i < n; ++i) {
    const bool ok = std::isfinite(y[i]);
    s[i + 1] = s[i] + (ok ? y[i] : 0.0);
    c[i + 1] = c[i] + (ok ? 1 : 0);
  }
  std::vector<float> out(n);
  for (int i = 0; i < n; ++i) {
    const int a = std::max(0, i - h), b = std::min(n, i + h + 1);
    const int k = c[b] - c[a];
    out[i] = k ? float((s[b] - s[a]) / k) : NAN;
  }
  return out;
}

std::vector<float> mean_of(const std::vector<const std::vector<float>*>& rows, size_t n) {
  std::vector<float> out(n, NAN);
  for (size_t i = 0; i < n; ++i) {
    double s = 0;
    int k = 0;
    for (const auto* r : rows)
      if (i < r->size() && std::isfinite((*r)[i])) s += (*r)[i], ++k;
    if (k) out[i] = float(s / k);
  }
  return out;
}

}  // namespace pvm::studio
