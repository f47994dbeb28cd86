#include "views/view_dilution_map.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "engine/base/fs_util.h"
#include "engine/base/log_sink.h"
#include "imgui.h"
#include "views/capture.h"
#include "views/ui_util.h"

namespace pvm::studio {

DilutionMapView::DilutionMapView(StudioContext& ctx) : View("Dilution map", Slot::CenterBottom, true), ctx_(ctx) {}

dmap::Matrix DilutionMapView::full_map() const {
  const UiState& ui = *ctx_.ui;
  if (mode == Difference) return dmap::position_map_diff(ui.side[0].tokens, ui.side[1].tokens, nosink, 0);
  return dmap::layer_by_position(ui.side[int(mode)].tokens, nosink);
}

dmap::Matrix DilutionMapView::head_map() const {
  if (mode != Difference) return head_means_[int(mode)].mean();
  const dmap::Matrix h0 = head_means_[0].mean(), h1 = head_means_[1].mean();
  return h0.empty() || h1.empty() ? dmap::Matrix{} : dmap::difference(h0, h1);
}

bool DilutionMapView::rebuild(int width) {
  const UiState& ui = *ctx_.ui;
  const size_t n0 = ui.side[0].tokens.size(), n1 = ui.side[1].tokens.size();
  if (built_run_ == ui.run_id && built_n_[0] == n0 && built_n_[1] == n1 && built_mode_ == int(mode) &&
      built_width_ == width && built_nosink_ == nosink)
    return false;
  if (built_run_ != ui.run_id) head_means_[0].reset(), head_means_[1].reset();
  built_run_ = ui.run_id, built_n_[0] = n0, built_n_[1] = n1, built_mode_ = int(mode), built_width_ = width;
  built_nosink_ = nosink;
  ++builds_;
  // Head means only add the tokens that arrived since the last build.
  for (int s = 0; s < 2; ++s) head_means_[s].update(ui.side[s].tokens);
  const int w = std::max(1, width);
  if (mode == Difference) {
    map_ = dmap::position_map_diff(ui.side[0].tokens, ui.side[1].tokens, nosink, w);
    tokens_ = int(std::max(n0, n1));
  } else {
    map_ = dmap::position_map(ui.side[int(mode)].tokens, nosink, w);
    tokens_ = int(ui.side[int(mode)].tokens.size());
  }
  if (map_.empty()) tokens_ = 0;
  heads_ = head_map();
  if (mode == Difference) {  // symmetric about 0: white is "no change", blue less, red more
    hi_ = std::max(dmap::max_abs(map_), 1e-12f), lo_ = -hi_;
    hhi_ = std::max(dmap::max_abs(heads_), 1e-12f), hlo_ = -hhi_;
  } else {
    dmap::range(map_, &lo_, &hi_);
    dmap::range(heads_, &hlo_, &hhi_);
  }
  map_dirty_ = heads_dirty_ = true;
  return true;
}

bool DilutionMapView::export_files(const std::string& base, std::string* error) {
  try {
    const dmap::Matrix m = full_map();
    if (m.empty()) throw pvm::Error(base + "_map.csv: nothing to export (" +
                                    (mode == Difference ? std::string("needs both answers") : "no tokens on this side") + ")");
    pvm::check_output_file(base + "_map.csv", "CSV");
    pvm::atomic_write_file(base + "_map.csv", dmap::to_csv(m, "layer", "t"));
    const dmap::Matrix h = head_map();
    if (!h.empty()) pvm::atomic_write_file(base + "_heads.csv", dmap::to_csv(h, "layer", "head"));
    log_info("dilution map: %s_map.csv (%d layers x %d positions)%s", base.c_str(), m.rows, m.cols,
             h.empty() ? "" : (", " + base + "_heads.csv").c_str());
  } catch (const std::exception& e) {
    *error = e.what();
    return false;
  }
  pending_png_ = base;
  return true;
}

void DilutionMapView::colour_bar(ImDrawList* dl, ImVec2 p0, ImVec2 p1, bool diverge, float lo, float hi) {
  const int steps = 32;
  const float h = (p1.y - p0.y) / steps;
  for (int i = 0; i < steps; ++i) {
    const float t = 1.0f - (i + 0.5f) / steps;  // top = high
    dl->AddRectFilled(ImVec2(p0.x, p0.y + i * h), ImVec2(p1.x, p0.y + (i + 1) * h + 0.5f),
                      diverge ? dmap::diverging(t) : dmap::sequential(t));
  }
  dl->AddRect(p0, p1, IM_COL32(160, 160, 160, 255));
  char buf[32];
  const ImU32 tc = ImGui::GetColorU32(ImGuiCol_Text);
  std::snprintf(buf, sizeof buf, diverge ? "%+.3g" : "%.3g", hi);
  dl->AddText(ImVec2(p1.x + 3, p0.y), tc, buf);
  std::snprintf(buf, sizeof buf, "%.3g", diverge ? 0.0f : (lo + hi) / 2);
  dl->AddText(ImVec2(p1.x + 3, (p0.y + p1.y) / 2 - ImGui::GetFontSize() / 2), tc, buf);
  std::snprintf(buf, sizeof buf, diverge ? "%+.3g" : "%.3g", lo);
  dl->AddText(ImVec2(p1.x + 3, p1.y - ImGui::GetFontSize()), tc, buf);
}

void DilutionMapView::draw() {
  int m = int(mode);
  ImGui::RadioButton("baseline", &m, Baseline);
  ImGui::SameLine();
  ImGui::RadioButton("PVM", &m, Pvm);
  ImGui::SameLine();
  ImGui::RadioButton("PVM - baseline", &m, Difference);
  mode = Mode(m);
  ImGui::SameLine();
  ImGui::Checkbox("sinks excluded", &nosink);
  help_marker("Rows: decoder layers (0 at the top). Columns: generated tokens, averaged per pixel column.\n"
              "Colour: share of the token's attention on the image tokens (mean over heads); the difference\n"
              "map uses a scale symmetric about 0 (white: no change, red: PVM looks at the image more).\n"
              "Below: mean visual mass of each head (per-head probes).\n"
              "Hover a column to select that token in every view; click to pin it.");
  ImGui::SameLine();
  if (ImGui::SmallButton("CSV + PNG")) {
    std::string err;
    if (!export_files("dilution_map", &err)) log_error("%s", err.c_str());
  }
  item_tooltip("Save dilution_map_map.csv (layers x positions, full resolution), dilution_map_heads.csv and "
               "dilution_map.png (what is shown)");

  const ImVec2 avail = ImGui::GetContentRegionAvail();
  if (avail.x < 16 || avail.y < 16) return;
  ImGui::BeginChild("##dmap", avail, false, ImGuiWindowFlags_NoScrollbar | ImGuiWindowFlags_NoScrollWithMouse);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 o = ImGui::GetCursorScreenPos();
  const float fs = ImGui::GetFontSize();
  const float heads_h = std::max(fs * 6, avail.y * 0.38f);
  const float map_h = std::max(fs * 5, avail.y - heads_h - ImGui::GetStyle().ItemSpacing.y);
  draw_map(dl, o, ImVec2(avail.x, map_h));
  ImGui::Dummy(ImVec2(avail.x, map_h));
  const ImVec2 ho = ImGui::GetCursorScreenPos();
  draw_heads(dl, ho, ImVec2(avail.x, avail.y - (ho.y - o.y)));
  if (!pending_png_.empty()) {
    const std::string base = pending_png_;
    pending_png_.clear();
    // Metadata first: the checker (and a figure script) need the scale and where the maps are.
    auto rect = [&](ImVec2 a, ImVec2 b) { return nlohmann::json::array({a.x - o.x, a.y - o.y, b.x - o.x, b.y - o.y}); };
    nlohmann::json j = {{"mode", mode == Difference ? "difference" : mode == Pvm ? "pvm" : "baseline"},
                        {"nosink", nosink},
                        {"tokens", tokens_},
                        {"cursor", ctx_.sel.token >= 0 && ctx_.sel.token < tokens_ ? ctx_.sel.token : -1},
                        {"map", {{"rect", rect(map_p0_, map_p1_)}, {"rows", map_.rows}, {"cols", map_.cols},
                                 {"lo", lo_}, {"hi", hi_}}},
                        {"size", {avail.x, avail.y}}};
    if (heads_drawn_)
      j["heads"] = {{"rect", rect(heads_p0_, heads_p1_)}, {"rows", heads_.rows}, {"cols", heads_.cols},
                    {"lo", hlo_}, {"hi", hhi_}};
    try {
      pvm::atomic_write_file(base + ".json", j.dump(1) + "\n");
    } catch (const std::exception& e) {
      log_error("%s", e.what());
    }
    queue_capture(
        o, ImVec2(o.x + avail.x, o.y + avail.y), base + ".png",
        [](bool ok, const std::string& msg) {
          if (ok)
            log_info("%s", msg.c_str());
          else
            log_error("%s", msg.c_str());
        },
        dl, ImGui::GetColorU32(ImGuiCol_WindowBg, 1.0f) | IM_COL32_A_MASK);
  }
  ImGui::EndChild();
}

void DilutionMapView::draw_map(ImDrawList* dl, ImVec2 o, ImVec2 size) {
  const float fs = ImGui::GetFontSize();
  const float left = fs * 3.2f, right = fs * 1.6f + ImGui::CalcTextSize("+0.0000").x + 8,
              top = fs * 1.4f, bottom = fs * 2.6f;
  const ImVec2 p0(o.x + left, o.y + top), p1(o.x + size.x - right, o.y + size.y - bottom);
  map_p0_ = p0, map_p1_ = p1;
  if (p1.x - p0.x < 8 || p1.y - p0.y < 8) return;
  const int width = int(p1.x - p0.x);
  rebuild(width);
  const ImU32 tc = ImGui::GetColorU32(ImGuiCol_Text);
  const bool diverge = mode == Difference;
  char buf[96];
  std::snprintf(buf, sizeof buf, "visual mass per layer, %s%s", diverge ? "PVM - baseline" : side_name(Side(mode)),
                nosink ? " (sinks excluded)" : "");
  dl->AddText(ImVec2(p0.x, o.y), tc, buf);
  dl->AddText(o, tc, "layer");
  if (map_.empty()) {
    dl->AddText(ImVec2(p0.x + 4, p0.y + 4), ImGui::GetColorU32(ImGuiCol_TextDisabled),
                diverge ? "needs both answers: generate baseline and PVM" : "no tokens on this side yet: generate");
    return;
  }
  if (map_dirty_) {
    const std::vector<uint32_t> px = dmap::to_rgba(map_, diverge, lo_, hi_);
    map_tex_.upload(map_.cols, map_.rows, px.data());
    map_dirty_ = false;
  }
  add_opaque_image(dl, map_tex_.id(), p0, p1);
  dl->AddRect(ImVec2(p0.x - 1, p0.y - 1), ImVec2(p1.x + 1, p1.y + 1), IM_COL32(120, 120, 120, 255));
  // Axes: layers on the left, positions below.
  const float rh = (p1.y - p0.y) / map_.rows;
  const int lstep = std::max(1, int(std::ceil(fs * 1.1f / rh)));
  for (int l = 0; l < map_.rows; l += lstep) {
    std::snprintf(buf, sizeof buf, "%d", l);
    const float y = p0.y + (l + 0.5f) * rh - fs / 2;
    dl->AddText(ImVec2(p0.x - ImGui::CalcTextSize(buf).x - 4, y), tc, buf);
  }
  const float w = p1.x - p0.x;
  const int ticks = std::max(1, std::min(tokens_, int(w / (fs * 6))));
  for (int k = 0; k <= ticks; ++k) {
    const int tok = int(std::lround(double(k) / ticks * tokens_));
    const float x = p0.x + w * float(k) / ticks;
    dl->AddLine(ImVec2(x, p1.y + 1), ImVec2(x, p1.y + 5), tc);
    std::snprintf(buf, sizeof buf, "%d", tok);
    const float tw = ImGui::CalcTextSize(buf).x;
    dl->AddText(ImVec2(std::clamp(x - tw / 2, p0.x - left, p1.x + right - tw), p1.y + 5), tc, buf);
  }
  const char* xl = "generated position (tokens)";
  dl->AddText(ImVec2((p0.x + p1.x) / 2 - ImGui::CalcTextSize(xl).x / 2, p1.y + 5 + fs), tc, xl);
  colour_bar(dl, ImVec2(p1.x + fs * 0.6f, p0.y), ImVec2(p1.x + fs * 1.4f, p1.y), diverge, lo_, hi_);
  // Shared token cursor: hovering a column selects its token, clicking pins it.
  const ImVec2 mp = ImGui::GetIO().MousePos;
  const bool inside = ImGui::IsWindowHovered() && mp.x >= p0.x && mp.x < p1.x && mp.y >= p0.y && mp.y < p1.y;
  if (inside) {
    const int tok = dmap::column_to_token(mp.x - p0.x, w, tokens_);
    const int layer = std::clamp(int((mp.y - p0.y) / rh), 0, map_.rows - 1);
    const int col = std::clamp(int((mp.x - p0.x) / w * map_.cols), 0, map_.cols - 1);
    if (tok >= 0) {
      const Side side = mode == Baseline ? Side::Baseline : Side::Pvm;
      if (ImGui::IsMouseClicked(0)) {
        const bool same = ctx_.sel.pinned && ctx_.sel.token == tok;
        ctx_.sel.pinned = !same;
      }
      if (!ctx_.sel.pinned || ImGui::IsMouseClicked(0)) ctx_.sel.token = tok, ctx_.sel.side = side;
      const float v = map_.at(layer, col);
      ImGui::SetTooltip("token %d, layer %d\n%s %s%.4g%s", tok + 1, layer, diverge ? "PVM - baseline" : "visual mass",
                        diverge && v > 0 ? "+" : "", double(v), map_.cols < tokens_ ? " (mean over the pixel column)" : "");
    }
  }
  if (ctx_.sel.token >= 0 && ctx_.sel.token < tokens_) {
    const float x = std::round(p0.x + (ctx_.sel.token + 0.5f) / tokens_ * w);
    dl->AddLine(ImVec2(x, p0.y - 3), ImVec2(x, p1.y + 3), IM_COL32(255, 255, 255, 230), 1.5f);
    dl->AddTriangleFilled(ImVec2(x - 4, p0.y - 8), ImVec2(x + 4, p0.y - 8), ImVec2(x, p0.y - 2), IM_COL32(255, 255, 255, 230));
  }
}

void DilutionMapView::draw_heads(ImDrawList* dl, ImVec2 o, ImVec2 size) {
  const float fs = ImGui::GetFontSize();
  heads_drawn_ = false;
  if (heads_.empty()) {
    const bool pending = ctx_.draft.per_head;
    ImGui::TextDisabled("Layer x head map: %s", mode == Difference ? "needs per-head probes on both answers"
                                                                   : "per-head probes were off for this answer");
    if (pending) {
      ImGui::TextDisabled("(they are on for the next generation)");
    } else if (ImGui::SmallButton("Turn on per-head probes")) {
      ctx_.draft.per_head = true;
    }
    item_tooltip("Records the visual mass of every head on the next generation (Prompt view: per head).");
    return;
  }
  const float left = fs * 3.2f, right = fs * 1.6f + ImGui::CalcTextSize("+0.0000").x + 8,
              top = fs * 1.4f, bottom = fs * 2.6f;
  // Cells stay square-ish: at most as wide as the area allows.
  const float aw = size.x - left - right, ah = size.y - top - bottom;
  ImGui::Dummy(size);
  if (aw < 8 || ah < 8) return;
  const float cw = std::floor(std::min(aw / heads_.cols, std::max(ah / heads_.rows * 2.5f, 2.0f)));
  if (cw < 1) return;
  const ImVec2 p0(o.x + left, o.y + top), p1(p0.x + cw * heads_.cols, o.y + size.y - bottom);
  heads_p0_ = p0, heads_p1_ = p1, heads_drawn_ = true;
  const ImU32 tc = ImGui::GetColorU32(ImGuiCol_Text);
  const bool diverge = mode == Difference;
  dl->AddText(ImVec2(p0.x, o.y), tc,
              diverge ? "mean visual mass per head, PVM - baseline" : "mean visual mass per head (all tokens)");
  dl->AddText(o, tc, "layer");
  if (heads_dirty_) {
    const std::vector<uint32_t> px = dmap::to_rgba(heads_, diverge, hlo_, hhi_);
    heads_tex_.upload(heads_.cols, heads_.rows, px.data());
    heads_dirty_ = false;
  }
  add_opaque_image(dl, heads_tex_.id(), p0, p1);
  dl->AddRect(ImVec2(p0.x - 1, p0.y - 1), ImVec2(p1.x + 1, p1.y + 1), IM_COL32(120, 120, 120, 255));
  char buf[32];
  const float rh = (p1.y - p0.y) / heads_.rows;
  const int lstep = std::max(1, int(std::ceil(fs * 1.1f / rh)));
  for (int l = 0; l < heads_.rows; l += lstep) {
    std::snprintf(buf, sizeof buf, "%d", l);
    dl->AddText(ImVec2(p0.x - ImGui::CalcTextSize(buf).x - 4, p0.y + (l + 0.5f) * rh - fs / 2), tc, buf);
  }
  const int hstep = std::max(1, int(std::ceil(fs * 1.6f / cw)));
  for (int h = 0; h < heads_.cols; h += hstep) {
    std::snprintf(buf, sizeof buf, "%d", h);
    dl->AddText(ImVec2(p0.x + (h + 0.5f) * cw - ImGui::CalcTextSize(buf).x / 2, p1.y + 3), tc, buf);
  }
  dl->AddText(ImVec2(p0.x, p1.y + 3 + fs), tc, "head");
  colour_bar(dl, ImVec2(p1.x + fs * 0.6f, p0.y), ImVec2(p1.x + fs * 1.4f, p1.y), diverge, hlo_, hhi_);
  const ImVec2 mp = ImGui::GetIO().MousePos;
  if (ImGui::IsWindowHovered() && mp.x >= p0.x && mp.x < p1.x && mp.y >= p0.y && mp.y < p1.y) {
    const int h = std::clamp(int((mp.x - p0.x) / cw), 0, heads_.cols - 1);
    const int l = std::clamp(int((mp.y - p0.y) / rh), 0, heads_.rows - 1);
    ImGui::SetTooltip("layer %d, head %d: %s%.4g", l, h, diverge && heads_.at(l, h) > 0 ? "+" : "", double(heads_.at(l, h)));
  }
}

}  // namespace pvm::studio
