#include "views/view_compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "views/fonts.h"
#include "views/ui_util.h"
#include "views/vismem_marks.h"

namespace pvm::studio {

int TokenLayout::hit(float px, float py) const {
  if (line_h <= 0 || py < 0) return -1;
  const float row = std::floor(py / line_h) * line_h;
  // Spans are ordered by y: binary search the row, then scan it.
  auto it = std::lower_bound(spans.begin(), spans.end(), row, [](const Span& s, float v) { return s.y < v; });
  for (; it != spans.end() && it->y == row; ++it)
    if (px >= it->x && px < it->x + (it->w > 0 ? it->w : 3.0f)) return int(it - spans.begin());  // empty tokens stay hoverable
  return -1;
}

CompareView::CompareView(StudioContext& ctx) : View("Compare", Slot::CenterTop, true), ctx_(ctx) {}

namespace {
float token_value(const TokenRec& t, int mode, int layer) {
  const std::vector<float>& m = mode == 2 ? t.mass_nosink : t.mass;
  if (m.empty()) return NAN;
  if (layer >= 0) return layer < int(m.size()) ? m[layer] : NAN;
  double s = 0;
  for (float v : m) s += v;
  return float(s / m.size());
}
}  // namespace

void CompareView::draw() {
  const UiState& ui = *ctx_.ui;
  const float fs = ImGui::GetFontSize();
  const bool generating = ui.status.state == EngineStatus::Generating;
  ImGui::BeginDisabled(!generating);
  if (ImGui::Button("Stop")) ctx_.engine->stop();
  ImGui::EndDisabled();
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 10);
  const char* modes[] = {"no colouring", "visual mass", "mass w/o sinks"};
  ImGui::Combo("##colour", &color_mode, modes, 3);
  item_tooltip("Tint each token by the share of its attention that went to the image (mean of layers, or one layer). "
               "Brighter = looked at the image more.");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 7);
  std::string ln = color_layer < 0 ? "all layers" : "layer " + std::to_string(color_layer);
  if (ImGui::BeginCombo("##clayer", ln.c_str())) {
    if (ImGui::Selectable("all layers", color_layer < 0)) color_layer = -1;
    for (int l = 0; l < ui.model.layers; ++l)
      if (ImGui::Selectable(("layer " + std::to_string(l)).c_str(), color_layer == l)) color_layer = l;
    ImGui::EndCombo();
  }
  ImGui::SameLine();
  if (ctx_.sel.token >= 0)
    ImGui::TextDisabled("token %d%s", ctx_.sel.token + 1, ctx_.sel.pinned ? " (pinned: click to release)" : "");
  else
    ImGui::TextDisabled("hover a token; click to pin it");

  // Tint values, cached per side and extended as tokens arrive; normalised over all answers so
  // the sides compare.
  for (int s = 0; s < kSides; ++s) {
    const auto& toks = ui.side[s].tokens;
    if (val_run_ != ui.run_id || val_mode_ != color_mode || val_layer_ != color_layer || values_[s].size() > toks.size()) {
      for (auto& v : values_) v.clear();
      vmax_ = 0, val_run_ = ui.run_id, val_mode_ = color_mode, val_layer_ = color_layer;
    }
  }
  for (int s = 0; s < kSides; ++s) {
    const auto& toks = ui.side[s].tokens;
    for (size_t i = values_[s].size(); i < toks.size(); ++i) {
      const float v = color_mode ? token_value(toks[i], color_mode, color_layer) : NAN;
      values_[s].push_back(v);
      if (std::isfinite(v)) vmax_ = std::max(vmax_, v);
    }
  }
  const float vmax = vmax_;
  hovered_ = -1;
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float gap = ImGui::GetStyle().ItemSpacing.x;
  // The VisMem column only while there is (or may be) a VisMem answer.
  const SideData& vm = ui.side[int(Side::Vismem)];
  const int cols = !ui.model.vismem.empty() || !vm.tokens.empty() || vm.running ? 3 : 2;
  const float w = std::floor((avail.x - gap * float(cols - 1)) / float(cols));
  for (int c = 0; c < cols; ++c) {
    if (c) ImGui::SameLine();
    draw_side(c, c + 1 < cols ? w : avail.x - (gap + w) * float(cols - 1), avail.y, vmax);
  }
  // Hover wins over a pin only while the mouse is on a token; a click toggles the pin.
  if (hovered_ >= 0) {
    if (ImGui::IsMouseClicked(0)) {
      const bool same = ctx_.sel.pinned && ctx_.sel.token == hovered_;
      ctx_.sel.pinned = !same;
    }
    if (!ctx_.sel.pinned || ImGui::IsMouseClicked(0)) ctx_.sel.token = hovered_, ctx_.sel.side = hovered_side_;
  } else if (!ctx_.sel.pinned && ImGui::IsWindowHovered(ImGuiHoveredFlags_ChildWindows)) {
    ctx_.sel.token = -1;
  }
}

void CompareView::vismem_tooltip(const SideData& sd, int token) const {
  const TokenRec& t = sd.tokens[size_t(token)];
  if (!t.memory_mass.empty()) {
    double s = 0;
    for (float v : t.memory_mass) s += v;
    ImGui::Text("attention on latent memory rows: mean %.4f", s / double(t.memory_mass.size()));
  }
  if (t.invoked.empty()) return;
  ImGui::PushStyleColor(ImGuiCol_Text, ImGui::ColorConvertU32ToFloat4(memory_color(t.invoked)));
  ImGui::Text("%s-term memory invoked here", t.invoked.c_str());
  ImGui::PopStyleColor();
  if (const InsertedRec* r = inserted_for(sd.tokens, token)) {
    double v = 0, m = 0, o = 0;
    for (size_t l = 0; l < r->visual.size(); ++l) v += r->visual[l], m += r->self[l], o += r->other[l];
    const double n = std::max<size_t>(1, r->visual.size());
    ImGui::Text("%d latent rows; they attended to: image %.1f%%, memory %.1f%%, other %.1f%%", r->rows, 100 * v / n,
                100 * m / n, 100 * o / n);
    ImGui::TextDisabled("(mean of %zu layers, heads and rows)", r->visual.size());
  }
}

void CompareView::draw_side(int side, float width, float height, float vmax) {
  const UiState& ui = *ctx_.ui;
  const SideData& sd = ui.side[side];
  ImGui::BeginGroup();
  // Header: name, count, speed, how it ended.
  ImGui::PushStyleColor(ImGuiCol_Text, ImGui::ColorConvertU32ToFloat4(side_color(side)));
  ImGui::TextUnformatted(side == 0 ? "Baseline" : side_name(Side(side)));
  ImGui::PopStyleColor();
  ImGui::SameLine();
  char info[160];
  std::snprintf(info, sizeof info, "%zu tokens%s%s%s", sd.tokens.size(),
                sd.tokens_per_s > 0 ? "" : "", sd.running ? ", generating" : "",
                sd.finish.empty() ? "" : (", " + sd.finish).c_str());
  ImGui::TextDisabled("%s", info);
  if (sd.tokens_per_s > 0) {
    ImGui::SameLine();
    ImGui::TextDisabled("| %.1f tok/s", sd.tokens_per_s);
  }
  if (side != 2 && !sd.tokens.empty()) {  // the run's dilution intervention (Prompt view), VisMem excluded
    const GenerateSettings& g = ui.settings;
    char iv[96] = "";
    int n = 0;
    if (g.history_window > 0) n += std::snprintf(iv + n, sizeof iv - n, " window %d", g.history_window);
    if (g.visual_scale != 1.0f) n += std::snprintf(iv + n, sizeof iv - n, " image x%.3g", g.visual_scale);
    if (g.visual_restore != 0.0f) std::snprintf(iv + n, sizeof iv - n, " x(n/P)^%.3g", g.visual_restore);
    if (iv[0]) {
      ImGui::SameLine();
      ImGui::TextDisabled("|%s", iv);
    }
  }
  const float child_h = height - ImGui::GetTextLineHeightWithSpacing();
  // No child background: the window clear colour shows through (software GL pays per filled pixel).
  const char* child_ids[kSides] = {"##base_text", "##pvm_text", "##vismem_text"};
  ImGui::BeginChild(child_ids[side], ImVec2(width, child_h), true);
  ImGui::PushFont(fonts().mono);
  ImFont* font = ImGui::GetFont();
  const float fsz = ImGui::GetFontSize();
  const float tw = ImGui::GetContentRegionAvail().x - ImGui::GetStyle().ScrollbarSize * 0.25f;
  TokenLayout& L = lay_[side];
  if (L.run != ui.run_id || L.width != tw || L.tokens > sd.tokens.size() || L.line_h != ImGui::GetTextLineHeight()) {
    L.reset(tw, ImGui::GetTextLineHeight());
    L.run = ui.run_id;
  }
  const bool grew = L.tokens < sd.tokens.size();
  L.extend(sd.tokens, [&](const char* b, const char* e) { return font->CalcTextSizeA(fsz, FLT_MAX, 0.0f, b, e).x; });

  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const float scroll_y = ImGui::GetScrollY();
  const float view_h = ImGui::GetWindowHeight();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  if (sd.tokens.empty()) {
    ImGui::TextDisabled(!ui.model.loaded                                   ? "Load a model first (Model tab)."
                        : side == 1 && ui.model.pvm_layers.empty()         ? "No PVM blocks: load an adapter."
                        : side == 2 && ui.model.vismem.empty()             ? "No VisMem adapter: load one (Model tab)."
                                                                           : "Press Generate (Prompt tab).");
  }
  // Only the rows in view: spans are sorted by y.
  const float y0 = scroll_y - L.line_h, y1 = scroll_y + view_h;
  auto first = std::lower_bound(L.spans.begin(), L.spans.end(), y0,
                                [](const TokenLayout::Span& s, float v) { return s.y < v; });
  const ImU32 text_col = ImGui::GetColorU32(ImGuiCol_Text);
  const ImU32 dim_col = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  const int sel = ctx_.sel.token;
  for (auto it = first; it != L.spans.end() && it->y < y1; ++it) {
    const TokenRec& t = sd.tokens[it->token];
    const ImVec2 a(origin.x + it->x, origin.y + it->y), b(a.x + std::max(it->w, 2.0f), a.y + L.line_h);
    if (color_mode && vmax > 0) {
      const float v = values_[side][it->token];
      if (std::isfinite(v)) dl->AddRectFilled(a, b, heat_color(v / vmax, 0.45f));
    }
    if (it->token == sel) dl->AddRectFilled(a, b, IM_COL32(255, 255, 255, 50));
    // VisMem's tokens in their memory's colour; the start token of an invocation boxed and underlined.
    const bool long_tok = t.vismem_token >= 2;
    const ImU32 col = t.vismem_token >= 0 ? memory_color(long_tok ? "long" : "short") : t.special ? dim_col : text_col;
    dl->AddText(font, fsz, a, col, L.text.data() + it->off, L.text.data() + it->off + it->len);
    if (!t.invoked.empty()) {
      dl->AddRect(a, b, memory_color(t.invoked), 2.0f, 0, 1.5f);
      dl->AddRectFilled(ImVec2(a.x, b.y - 3.0f), ImVec2(b.x, b.y), memory_color(t.invoked));
    }
    if (it->token == sel) dl->AddRect(a, b, IM_COL32(255, 220, 60, 255), 0.0f, 0, 1.5f);
  }
  ImGui::Dummy(ImVec2(tw, L.height()));
  // Hit test.
  if (ImGui::IsWindowHovered()) {
    const ImVec2 m = ImGui::GetIO().MousePos;
    const int h = L.hit(m.x - origin.x, m.y - origin.y);
    if (h >= 0) {
      hovered_ = L.spans[h].token, hovered_side_ = Side(side);
      const TokenRec& t = sd.tokens[hovered_];
      ImGui::BeginTooltip();
      ImGui::Text("%s token %d  (id %lld)", side_name(Side(side)), hovered_ + 1, (long long)t.id);
      if (!t.mass.empty()) {
        double s = 0;
        for (float v : t.mass) s += v;
        ImGui::Text("visual mass: mean %.4f over %zu layers", s / t.mass.size(), t.mass.size());
      }
      if (!t.pvm_gate.empty()) ImGui::Text("PVM injection ratio (layer 1st): %.4f", t.pvm_ratio[0]);
      if (t.lens_first >= 0) ImGui::Text("logit lens: agrees from layer %d", t.lens_first);
      if (side == int(Side::Vismem)) vismem_tooltip(sd, hovered_);
      ImGui::EndTooltip();
    }
  }
  // Follow the stream while the user stays at the bottom.
  if (grew && follow_[side]) ImGui::SetScrollHereY(1.0f);
  follow_[side] = ImGui::GetScrollY() >= ImGui::GetScrollMaxY() - L.line_h * 2;
  ImGui::PopFont();
  ImGui::EndChild();
  ImGui::EndGroup();
}

}  // namespace pvm::studio
