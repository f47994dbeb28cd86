#include "views/view_gaze_replay.h"

#include <stb_image.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/gif.h"
#include "engine/base/log_sink.h"
#include "views/capture.h"
#include "views/fonts.h"
#include "views/gl_texture.h"
#include "views/ui_util.h"
#include "views/view_image.h"  // token_heat

namespace pvm::studio {

namespace fs = std::filesystem;

struct GazeReplayView::Export {
  std::string dir;
  std::vector<int> frames;
  size_t next = 0, done = 0;
  bool waiting = false, keep_png = true, failed = false;
  Side side = Side::Pvm;
  int delay_cs = 10;
  int w = 0, h = 0;  // GIF canvas: the first frame's size
  std::vector<float> image_rect;  // of the first frame, in its pixels
  std::unique_ptr<pvm::GifWriter> gif;
};

GazeReplayView::GazeReplayView(StudioContext& ctx) : View("Gaze replay", Slot::CenterTop, true), ctx_(ctx) {}
GazeReplayView::~GazeReplayView() = default;

int GazeReplayView::tokens() const { return int(ctx_.ui->side[int(side)].tokens.size()); }

bool GazeReplayView::start_export(const std::string& dir, int stride, bool keep_png) {
  const int n = tokens();
  if (n == 0) {
    log_error("gaze replay: the %s answer has no tokens to export", side_name(side));
    return false;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir, ec)) {
    log_error("%s: cannot create the export folder", dir.c_str());
    return false;
  }
  export_ = std::make_unique<Export>();
  export_->dir = dir;
  export_->frames = replay_frames(0, n - 1, stride);
  export_->keep_png = keep_png;
  export_->side = side;
  export_->delay_cs = replay_delay_cs(clock.speed, stride);
  clock.playing = false;
  exported_frames_ = 0;
  export_error_.clear();
  focus();  // frames are rendered while this view is drawn
  log_info("gaze replay: exporting %zu frames of the %s answer to %s", export_->frames.size(), side_name(side), dir.c_str());
  return true;
}

void GazeReplayView::cancel_export() {
  if (!export_) return;
  log_warn("gaze replay: export to %s cancelled after %zu of %zu frames", export_->dir.c_str(), export_->done,
           export_->frames.size());
  export_.reset();  // the GIF writer removes its unfinished file
}

void GazeReplayView::on_frame_captured(bool ok, const std::string& msg, const std::string& png) {
  Export& e = *export_;
  e.waiting = false;
  if (!ok) {
    e.failed = true, export_error_ = msg;
    return;
  }
  int w = 0, h = 0, c = 0;
  unsigned char* px = stbi_load(png.c_str(), &w, &h, &c, 3);
  if (!px) {
    e.failed = true, export_error_ = png + ": cannot read the frame back (" + stbi_failure_reason() + ")";
    return;
  }
  try {
    if (!e.gif) {
      e.w = w, e.h = h;
      e.gif = std::make_unique<pvm::GifWriter>((fs::path(e.dir) / "replay.gif").string(), w, h, 0);
    }
    if (w == e.w && h == e.h) {
      e.gif->add_frame(px, e.delay_cs);
    } else {  // the view was resized during the export: keep the first frame's canvas
      std::vector<uint8_t> canvas(size_t(e.w) * e.h * 3, 26);
      for (int y = 0; y < std::min(h, e.h); ++y)
        std::copy(px + size_t(y) * w * 3, px + size_t(y) * w * 3 + size_t(std::min(w, e.w)) * 3, &canvas[size_t(y) * e.w * 3]);
      e.gif->add_frame(canvas.data(), e.delay_cs);
    }
  } catch (const std::exception& ex) {
    e.failed = true, export_error_ = ex.what();
  }
  stbi_image_free(px);
  if (!e.keep_png) {
    std::error_code ec;
    fs::remove(png, ec);
  }
  ++e.done;
}

void GazeReplayView::finish_export() {
  Export& e = *export_;
  if (!e.failed) {
    try {
      e.gif->close();
      // Which token each frame shows and where the image lies in it (for slides and checks).
      nlohmann::json frames = nlohmann::json::array();
      for (size_t i = 0; i < e.done; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "frame_%05zu.png", i + 1);
        frames.push_back({{"file", e.keep_png ? name : ""}, {"token", e.frames[i]}});
      }
      const GridInfo& g = ctx_.ui->grid;
      const nlohmann::json meta = {{"side", side_name(e.side)}, {"speed", clock.speed}, {"delay_ms", e.delay_cs * 10},
                                   {"heat", {{"pvm", heat_pvm}, {"layer", heat_layer}, {"opacity", opacity}}},
                                   {"image_rect", e.image_rect}, {"grid", {{"rows", g.rows}, {"cols", g.cols}}},
                                   {"size", {e.w, e.h}}, {"gif", "replay.gif"}, {"frames", frames}};
      pvm::atomic_write_file((fs::path(e.dir) / "replay.json").string(), meta.dump(1) + "\n");
      std::error_code ec;
      const auto bytes = fs::file_size(e.gif->path(), ec);
      exported_frames_ = int(e.done);
      log_info("gaze replay: %zu frames (%d x %d, %d ms each) -> %s (%.1f MB)%s", e.done, e.w, e.h, e.delay_cs * 10,
               e.gif->path().c_str(), double(bytes) / 1e6, e.keep_png ? " and frame_*.png" : "");
    } catch (const std::exception& ex) {
      e.failed = true, export_error_ = ex.what();
    }
  }
  if (e.failed) log_error("gaze replay export: %s", export_error_.c_str());
  export_.reset();
}

// One frame of an export per UI frame: the stage was just drawn for frames[next]; queue its capture.
void GazeReplayView::export_step(ImVec2 min, ImVec2 max, ImDrawList* dl) {
  Export& e = *export_;
  if (e.waiting || e.next >= e.frames.size() || e.failed) return;
  char name[32];
  std::snprintf(name, sizeof name, "frame_%05zu.png", e.next + 1);
  const std::string png = (fs::path(e.dir) / name).string();
  e.waiting = true;
  if (e.next == 0) e.image_rect.assign(image_rect_, image_rect_ + 4);
  ++e.next;
  queue_capture(min, max, png, [this, png](bool ok, const std::string& msg) { on_frame_captured(ok, msg, png); }, dl,
                ImGui::GetColorU32(ImGuiCol_WindowBg, 1.0f) | IM_COL32_A_MASK);
}

void GazeReplayView::draw() {
  const UiState& ui = *ctx_.ui;
  if (export_ && !export_->waiting && (export_->failed || export_->done == export_->frames.size())) finish_export();
  if (export_) {
    side = export_->side;
    if (export_->next < export_->frames.size() && !export_->waiting) clock.seek(export_->frames[export_->next], tokens());
  }
  int n = tokens();
  // Nothing on the chosen side of a finished run (a baseline-only one, say): show the other one.
  if (n == 0 && !export_ && ui.status.state == EngineStatus::Idle && !ui.side[1 - int(side)].tokens.empty())
    side = Side(1 - int(side)), n = tokens();
  // The user moved the shared cursor elsewhere (Compare, plots, the map): the replay goes there.
  const Selection& sel = ctx_.sel;
  // The replay is two-arm (baseline, PVM): a cursor set on the VisMem answer leaves it where it is.
  if (!clock.playing && !export_ && sel.token >= 0 && sel.side != Side::Vismem &&
      (sel.token != last_set_ || sel.side != last_side_) && sel.token < int(ui.side[int(sel.side)].tokens.size())) {
    side = sel.side, n = tokens(), clock.seek(sel.token, n);
    last_set_ = sel.token, last_side_ = sel.side;
  }
  clock.tick(ImGui::GetIO().DeltaTime, n);
  draw_controls(n);
  n = tokens();
  // The replay moved (play, step, scrub, export): every view follows.
  if (n > 0 && (clock.token != last_set_ || side != last_side_)) {
    ctx_.sel.token = clock.token, ctx_.sel.side = side, ctx_.sel.pinned = true;
    last_set_ = clock.token, last_side_ = side;
  }
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  if (avail.x > 16 && avail.y > 16) draw_stage(avail, n);
  browser_.draw();
}

void GazeReplayView::draw_controls(int n) {
  const float fs = ImGui::GetFontSize();
  ImGui::BeginDisabled(export_ != nullptr);
  if (ImGui::Button("|<")) clock.seek(0, n), clock.playing = false;
  item_tooltip("First token");
  ImGui::SameLine();
  if (ImGui::ArrowButton("##back", ImGuiDir_Left)) clock.step(-1, n), clock.playing = false;
  item_tooltip("Previous token (Left arrow)");
  ImGui::SameLine();
  if (ImGui::Button(clock.playing ? "Pause" : "Play", ImVec2(fs * 3.6f, 0))) clock.toggle(n);
  item_tooltip("Play / pause (Space): the image heatmap follows the text");
  ImGui::SameLine();
  if (ImGui::ArrowButton("##fwd", ImGuiDir_Right)) clock.step(1, n), clock.playing = false;
  item_tooltip("Next token (Right arrow)");
  ImGui::SameLine();
  if (ImGui::Button(">|")) clock.seek(n - 1, n), clock.playing = false;
  item_tooltip("Last token");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 9);
  ImGui::SliderFloat("##speed", &clock.speed, ReplayClock::kMinSpeed, ReplayClock::kMaxSpeed, "%.3g tokens/s",
                     ImGuiSliderFlags_Logarithmic);
  item_tooltip("Replay speed (also the frame time of the exported GIF)");
  ImGui::SameLine();
  ImGui::Checkbox("loop", &clock.loop);
  ImGui::SameLine();
  int s = int(side);
  ImGui::SetNextItemWidth(fs * 6.5f);
  const char* sides[] = {"baseline", "PVM"};
  if (ImGui::Combo("##side", &s, sides, 2)) side = Side(s), clock.seek(clock.token, tokens());
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 6.5f);
  int src = heat_pvm ? 1 : 0;
  const char* srcs[] = {"backbone", "PVM attn"};
  if (ImGui::Combo("##src", &src, srcs, 2)) heat_pvm = src == 1, heat_layer = -1;
  item_tooltip("backbone: the decoder's attention on each visual token; PVM attn: a PVM block's attention over "
               "the visual memory");
  ImGui::SameLine();
  const UiState& ui = *ctx_.ui;
  const int nl = heat_pvm ? int(ui.model.pvm_layers.size()) : ui.model.layers;
  if (heat_layer >= nl) heat_layer = -1;
  const std::string cur = heat_layer < 0 ? "mean of layers"
                          : heat_pvm     ? "PVM @ " + std::to_string(ui.model.pvm_layers[size_t(heat_layer)])
                                         : "layer " + std::to_string(heat_layer);
  ImGui::SetNextItemWidth(fs * 8);
  if (ImGui::BeginCombo("##layer", cur.c_str())) {
    if (ImGui::Selectable("mean of layers", heat_layer < 0)) heat_layer = -1;
    for (int l = 0; l < nl; ++l) {
      const std::string name = heat_pvm ? "PVM @ " + std::to_string(ui.model.pvm_layers[size_t(l)]) : "layer " + std::to_string(l);
      if (ImGui::Selectable(name.c_str(), heat_layer == l)) heat_layer = l;
    }
    ImGui::EndCombo();
  }
  ImGui::EndDisabled();
  ImGui::SameLine();
  if (export_) {
    const float f = export_->frames.empty() ? 0.0f : float(export_->done) / float(export_->frames.size());
    char buf[64];
    std::snprintf(buf, sizeof buf, "frame %zu / %zu", export_->done, export_->frames.size());
    ImGui::ProgressBar(f, ImVec2(fs * 8, 0), buf);
    ImGui::SameLine();
    if (ImGui::SmallButton("Cancel")) cancel_export();
  } else {
    ImGui::BeginDisabled(n == 0);
    if (ImGui::SmallButton("Export...")) ImGui::OpenPopup("##export");
    ImGui::EndDisabled();
    item_tooltip("Render every token's stage as PNG frames and an animated GIF (for slides)");
    if (ImGui::BeginPopup("##export")) {
      ImGui::SetNextItemWidth(fs * 6);
      ImGui::InputInt("every n-th token", &stride_);
      stride_ = std::clamp(stride_, 1, 1000);
      ImGui::Checkbox("keep the PNG frames", &keep_png_);
      ImGui::TextDisabled("%zu frames, %d ms each", replay_frames(0, n - 1, stride_).size(),
                          replay_delay_cs(clock.speed, stride_) * 10);
      if (ImGui::Button("Choose folder...")) {
        ImGui::CloseCurrentPopup();
        browser_.open("Export gaze replay to folder", FileBrowser::Mode::Save, "gaze-replay", {},
                      [this](const std::string& p, std::string* e) {
                        if (start_export(p, stride_, keep_png_)) return true;
                        *e = "cannot export: see the log";
                        return false;
                      });
      }
      ImGui::EndPopup();
    }
  }
  // Keyboard while this view has focus.
  if (!export_ && ImGui::IsWindowFocused(ImGuiFocusedFlags_RootAndChildWindows) && !ImGui::GetIO().WantTextInput) {
    if (ImGui::IsKeyPressed(ImGuiKey_Space)) clock.toggle(n);
    if (ImGui::IsKeyPressed(ImGuiKey_LeftArrow)) clock.step(-1, n), clock.playing = false;
    if (ImGui::IsKeyPressed(ImGuiKey_RightArrow)) clock.step(1, n), clock.playing = false;
  }
  // Scrub bar.
  if (n > 1) {
    int t = clock.token + 1;
    ImGui::SetNextItemWidth(-1);
    ImGui::BeginDisabled(export_ != nullptr);
    if (ImGui::SliderInt("##scrub", &t, 1, n, "token %d")) clock.seek(t - 1, n);
    ImGui::EndDisabled();
  }
}

void GazeReplayView::draw_stage(ImVec2 size, int n) {
  const UiState& ui = *ctx_.ui;
  ImGui::BeginChild("##stage", size, false, ImGuiWindowFlags_NoScrollbar | ImGuiWindowFlags_NoScrollWithMouse);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 o = ImGui::GetCursorScreenPos(), end(o.x + size.x, o.y + size.y);
  const float fs = ImGui::GetFontSize(), pad = std::round(fs * 0.5f);
  const ImU32 dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  if (n == 0) {
    dl->AddText(ImVec2(o.x + pad, o.y + pad), dim,
                ui.status.state == EngineStatus::Generating ? "generating: the replay starts once tokens arrive"
                                                            : "Nothing to replay yet: generate an answer (Prompt tab).");
    ImGui::EndChild();
    return;
  }
  // Caption: side, position, the token, its visual mass.
  const TokenRec& t = ui.side[int(side)].tokens[size_t(clock.token)];
  std::string piece = t.piece.substr(0, 24);
  for (char& c : piece)
    if (c == '\n') c = ' ';
  double mass = 0;
  for (float v : t.mass) mass += v;
  if (!t.mass.empty()) mass /= double(t.mass.size());
  char cap[200];
  std::snprintf(cap, sizeof cap, "%s   token %d / %d   '%s'   visual mass %.3f", side_name(side), clock.token + 1, n,
                piece.c_str(), mass);
  dl->AddText(ImVec2(o.x + pad, o.y + pad * 0.5f), side_color(int(side)), cap);
  const float top = o.y + fs + pad, trace_h = std::max(fs * 3.0f, size.y * 0.16f);
  const float body_bottom = end.y - trace_h - pad;
  // Image on the left (or on top of a tall stage), text beside it.
  const ImageData& img = ui.settings.image;
  const float body_h = body_bottom - top, body_w = size.x - 2 * pad;
  if (body_h > 16 && body_w > 16) {
    const bool wide = body_w > body_h * 1.2f;
    float iw = 0, ih = 0;
    if (img.valid()) {
      const float maxw = wide ? body_w * 0.58f : body_w, maxh = wide ? body_h : body_h * 0.6f;
      const float s = std::min(maxw / img.width, maxh / img.height);
      iw = std::floor(img.width * s), ih = std::floor(img.height * s);
      draw_image(dl, ImVec2(o.x + pad, top), ImVec2(o.x + pad + iw, top + ih));
      image_rect_[0] = pad, image_rect_[1] = top - o.y, image_rect_[2] = pad + iw, image_rect_[3] = top + ih - o.y;
    } else {
      dl->AddText(ImVec2(o.x + pad, top), dim, "no image saved with this answer");
      iw = wide ? body_w * 0.3f : 0, ih = wide ? 0 : fs * 2;
    }
    const ImVec2 t0 = wide ? ImVec2(o.x + 2 * pad + iw, top) : ImVec2(o.x + pad, top + ih + pad);
    draw_text(dl, t0, ImVec2(end.x - pad, body_bottom));
  }
  draw_trace(dl, ImVec2(o.x + pad, end.y - trace_h), ImVec2(end.x - pad, end.y - pad * 0.5f), n);
  ImGui::Dummy(size);
  if (export_) export_step(o, end, dl);
  ImGui::EndChild();
}

void GazeReplayView::draw_image(ImDrawList* dl, ImVec2 p0, ImVec2 p1) {
  const UiState& ui = *ctx_.ui;
  const ImageData& img = ui.settings.image;
  if (!tex_) tex_ = std::make_unique<CpuTexture>();
  if (tex_source_ != img.source || tex_w_ != img.width || tex_h_ != img.height || !tex_->valid()) {
    std::vector<uint32_t> rgba(size_t(img.width) * img.height);
    for (size_t i = 0; i < rgba.size(); ++i)
      rgba[i] = IM_COL32(img.rgb[i * 3], img.rgb[i * 3 + 1], img.rgb[i * 3 + 2], 255);
    tex_->upload(img.width, img.height, rgba.data());
    tex_source_ = img.source, tex_w_ = img.width, tex_h_ = img.height;
  }
  dl->AddImage(tex_->id(), p0, p1);
  const GridInfo& g = ui.grid;
  const std::vector<float> h = token_heat(ui, side, clock.token, heat_pvm, heat_layer);
  const float fs = ImGui::GetFontSize();
  if (!h.empty() && g.valid()) {
    float mx = 0;
    for (float v : h) mx = std::max(mx, v);
    const float cw = (p1.x - p0.x) / g.cols, ch = (p1.y - p0.y) / g.rows;
    for (int r = 0; r < g.rows; ++r)
      for (int c = 0; c < g.cols; ++c) {
        const float v = mx > 0 ? h[size_t(r) * g.cols + c] / mx : 0.0f;
        dl->AddRectFilled(ImVec2(p0.x + c * cw, p0.y + r * ch), ImVec2(p0.x + (c + 1) * cw, p0.y + (r + 1) * ch),
                          heat_color(v, opacity * (0.25f + 0.75f * v)));
      }
  } else {
    const char* why = heat_pvm && side == Side::Baseline ? "the baseline has no PVM attention"
                                                         : "no heatmap recorded (Prompt: heatmaps on)";
    dl->AddRectFilled(ImVec2(p0.x, p1.y - fs * 1.4f), p1, IM_COL32(0, 0, 0, 160));
    dl->AddText(ImVec2(p0.x + 4, p1.y - fs * 1.2f), IM_COL32(255, 255, 255, 220), why);
  }
  dl->AddRect(p0, p1, IM_COL32(120, 120, 120, 255));
}

void GazeReplayView::draw_text(ImDrawList* dl, ImVec2 p0, ImVec2 p1) {
  const UiState& ui = *ctx_.ui;
  const auto& toks = ui.side[int(side)].tokens;
  ImGui::PushFont(fonts().mono);
  ImFont* font = ImGui::GetFont();
  const float fsz = ImGui::GetFontSize(), lh = ImGui::GetTextLineHeight();
  const float w = p1.x - p0.x;
  if (layout_.run != ui.run_id || layout_side_ != int(side) || layout_.width != w || layout_.tokens > toks.size() ||
      layout_.line_h != lh) {
    layout_.reset(w, lh);
    layout_.run = ui.run_id, layout_side_ = int(side);
  }
  layout_.extend(toks, [&](const char* b, const char* e) { return font->CalcTextSizeA(fsz, FLT_MAX, 0.0f, b, e).x; });
  // The answer typed out up to the current token; scrolled so that token's line stays in view.
  float cur_y = 0;
  auto last = std::upper_bound(layout_.spans.begin(), layout_.spans.end(), clock.token,
                               [](int t, const TokenLayout::Span& s) { return t < s.token; });
  if (last != layout_.spans.begin()) cur_y = std::prev(last)->y;
  const float shift = std::max(0.0f, cur_y + lh - (p1.y - p0.y));
  dl->PushClipRect(p0, p1, true);
  const ImU32 tc = ImGui::GetColorU32(ImGuiCol_Text), dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  auto first = std::lower_bound(layout_.spans.begin(), last, shift - lh,
                                [](const TokenLayout::Span& s, float v) { return s.y < v; });
  for (auto it = first; it != last; ++it) {
    const ImVec2 a(p0.x + it->x, p0.y + it->y - shift), b(a.x + std::max(it->w, 2.0f), a.y + lh);
    const bool cur = it->token == clock.token;
    if (cur) dl->AddRectFilled(a, b, IM_COL32(255, 220, 60, 70));
    dl->AddText(font, fsz, a, toks[size_t(it->token)].special ? dim : tc, layout_.text.data() + it->off,
                layout_.text.data() + it->off + it->len);
    if (cur) dl->AddRect(a, b, IM_COL32(255, 220, 60, 255), 0.0f, 0, 1.5f);
  }
  dl->PopClipRect();
  ImGui::PopFont();
}

// Mean visual mass (over layers) of both answers along the positions, with the replay's position.
void GazeReplayView::draw_trace(ImDrawList* dl, ImVec2 p0, ImVec2 p1, int n) {
  const UiState& ui = *ctx_.ui;
  for (int s = 0; s < 2; ++s) {
    const auto& toks = ui.side[s].tokens;
    if (trace_run_ != ui.run_id || trace_[s].size() > toks.size()) trace_[0].clear(), trace_[1].clear(), trace_run_ = ui.run_id;
  }
  float mx = 0;
  int len = 0;
  for (int s = 0; s < 2; ++s) {
    const auto& toks = ui.side[s].tokens;
    for (size_t i = trace_[s].size(); i < toks.size(); ++i) {
      double m = 0;
      for (float v : toks[i].mass) m += v;
      trace_[s].push_back(toks[i].mass.empty() ? NAN : float(m / double(toks[i].mass.size())));
    }
    for (float v : trace_[s])
      if (std::isfinite(v)) mx = std::max(mx, v);
    len = std::max(len, int(trace_[s].size()));
  }
  const float fs = ImGui::GetFontSize();
  const ImU32 dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  dl->AddRect(p0, p1, IM_COL32(90, 90, 90, 255));
  dl->AddText(ImVec2(p0.x + 3, p0.y + 1), dim, "visual mass (mean of layers)");
  {
    const float bw = ImGui::CalcTextSize("baseline").x, pw = ImGui::CalcTextSize("PVM").x;
    dl->AddText(ImVec2(p1.x - pw - 4, p0.y + 1), side_color(1), "PVM");
    dl->AddText(ImVec2(p1.x - pw - bw - 14, p0.y + 1), side_color(0), "baseline");
  }
  if (len == 0 || mx <= 0) return;
  const float w = p1.x - p0.x, h = p1.y - p0.y - fs;
  const int cols = std::max(1, std::min(len, int(w)));
  std::vector<ImVec2> pts;
  for (int s = 0; s < 2; ++s) {
    const auto& tr = trace_[s];
    if (tr.empty()) continue;
    pts.clear();
    for (int x = 0; x < cols; ++x) {  // mean per pixel column over the positions it covers
      const int c0 = int(int64_t(x) * len / cols), c1 = std::max(c0 + 1, int(int64_t(x + 1) * len / cols));
      double sum = 0;
      int k = 0;
      for (int c = c0; c < c1 && c < int(tr.size()); ++c)
        if (std::isfinite(tr[size_t(c)])) sum += tr[size_t(c)], ++k;
      if (k) pts.emplace_back(p0.x + (x + 0.5f) * w / cols, p1.y - 2 - float(sum / k) / mx * (h - 4));
    }
    dl->AddPolyline(pts.data(), int(pts.size()), side_color(s), 0, s == int(side) ? 2.0f : 1.2f);
  }
  const float x = p0.x + (clock.token + 0.5f) / float(len) * w;
  dl->AddLine(ImVec2(x, p0.y + fs), ImVec2(x, p1.y), IM_COL32(255, 220, 60, 230), 1.5f);
  (void)n;
}

}  // namespace pvm::studio
