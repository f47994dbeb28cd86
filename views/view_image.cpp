#include "engine/base/fs_util.h"
#include "engine/base/image_check.h"
#include "engine/base/version.h"
#include "views/view_image.h"

#include <stb_image.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "engine/base/scenes.h"
#include "views/gl_texture.h"
#include "views/ui_util.h"
#include "engine/base/log_sink.h"

namespace pvm::studio {

bool load_image_file(const std::string& path, ImageData* out, std::string* error) {
  // The same checks as the CLI: one file reader (a folder or FIFO is named as such) and the
  // engine's image-size check from the header, before any pixel is allocated.
  std::string bytes;
  int w = 0, h = 0, c = 0;
  try {
    bytes = pvm::read_file_to_string(path, uint64_t(1) << 30, "image");
    if (bytes.size() > size_t(INT32_MAX)) throw pvm::file_error(path, "file too large to decode (over 2 GiB)");
    const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
    if (!stbi_info_from_memory(data, int(bytes.size()), &w, &h, &c))
      throw pvm::file_error(path, std::string("not an image this build can read (") + stbi_failure_reason() + ")");
    pvm::check_image_size(w, h, path);
  } catch (const std::exception& e) {
    *error = e.what();
    return false;
  }
  unsigned char* px = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), int(bytes.size()), &w, &h, &c, 3);
  if (!px) {
    *error = path + ": not an image this build can read (" + stbi_failure_reason() + ")";
    return false;
  }
  out->width = w, out->height = h;
  out->rgb.assign(px, px + size_t(w) * h * 3);
  out->source = path;
  stbi_image_free(px);
  return true;
}

std::vector<float> token_heat(const UiState& ui, Side side, int tok, bool pvm, int layer) {
  const SideData& sd = ui.of(side);
  if (tok < 0 || tok >= int(sd.tokens.size())) return {};
  const auto& rows = pvm ? sd.tokens[tok].pvm_heat : sd.tokens[tok].heat;
  const size_t n = size_t(ui.grid.rows) * ui.grid.cols;
  if (rows.empty() || n == 0) return {};
  if (layer >= 0) {
    if (layer >= int(rows.size()) || rows[layer].size() < n) return {};
    return std::vector<float>(rows[layer].begin(), rows[layer].begin() + n);
  }
  std::vector<float> m(n, 0.0f);
  for (const auto& r : rows)
    for (size_t i = 0; i < n && i < r.size(); ++i) m[i] += r[i] / float(rows.size());
  return m;
}

ImageView::ImageView(StudioContext& ctx) : View("Image", Slot::LeftTop, true), ctx_(ctx) {}
ImageView::~ImageView() = default;

void ImageView::set_image(ImageData img) {
  ctx_.draft.image = std::move(img);
  tex_dirty_ = true;
  grid_ = ctx_.engine->grid_for(ctx_.draft.image.width, ctx_.draft.image.height);
  log_info("image %s: %dx%d -> %d x %d visual tokens", ctx_.draft.image.source.c_str(), ctx_.draft.image.width,
           ctx_.draft.image.height, grid_.rows, grid_.cols);
}

bool ImageView::open_file(const std::string& path) {
  ImageData img;
  std::string err;
  if (!load_image_file(path, &img, &err)) {
    log_error("%s", err.c_str());
    return false;
  }
  set_image(std::move(img));
  return true;
}

bool ImageView::new_scene(uint64_t seed) {
  try {
    scenes::Scene sc = scenes::generate(seed, scenes::SceneOptions{});
    scenes::Image im = scenes::render(sc);
    ImageData img;
    img.width = im.width, img.height = im.height, img.rgb = std::move(im.rgb);
    img.source = "scene:" + std::to_string(seed);
    set_image(std::move(img));
    log_info("scene %llu: %s", (unsigned long long)seed, scenes::describe(sc).c_str());
    scene_seed_ = seed + 1;
    return true;
  } catch (const std::exception& e) {
    log_error("scene %llu: %s", (unsigned long long)seed, e.what());
    return false;
  }
}

void ImageView::browse() {
  const ImageData& img = ctx_.draft.image;
  const std::string start = img.source.find('/') != std::string::npos ? img.source : (pvm::source_dir() + "/assets/samples");
  browser_.open("Open image", FileBrowser::Mode::OpenFile, start,
                {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tga", ".psd"},
                [this](const std::string& p, std::string* e) {
                  ImageData d;
                  if (!load_image_file(p, &d, e)) return false;
                  set_image(std::move(d));
                  return true;
                });
}

void ImageView::draw() {
  const UiState& ui = *ctx_.ui;
  const ImageData& img = ctx_.draft.image;
  const float fs = ImGui::GetFontSize();
  if (ImGui::Button("Open...")) browse();
  item_tooltip("Open an image file. You can also drop a file onto the window.");
  ImGui::SameLine();
  if (ImGui::Button("New random scene")) new_scene(scene_seed_ + uint64_t(ImGui::GetTime() * 1000) % 100000);
  item_tooltip("A procedural scene of objects on a 4x4 grid (engine/base/scenes.h).");
  ImGui::SameLine();
  ImGui::Checkbox("grid", &show_grid);
  ImGui::SameLine();
  ImGui::Checkbox("heatmap", &show_heat);

  // Overlay source: backbone layer or PVM layer.
  ImGui::SetNextItemWidth(fs * 7.5f);
  int src = heat_pvm ? 1 : 0;
  const char* srcs[] = {"backbone", "PVM"};
  if (ImGui::Combo("##src", &src, srcs, 2)) heat_pvm = src == 1, heat_layer = -1;
  item_tooltip("backbone: the decoder's own attention on each visual token.\nPVM: the attention of a PVM block over "
               "the visual memory.");
  ImGui::SameLine();
  const int nl = heat_pvm ? int(ui.model.pvm_layers.size()) : ui.model.layers;
  std::string cur = heat_layer < 0 ? "mean of layers"
                    : heat_pvm     ? "PVM @ layer " + std::to_string(heat_layer < nl ? ui.model.pvm_layers[heat_layer] : -1)
                                   : "layer " + std::to_string(heat_layer);
  ImGui::SetNextItemWidth(fs * 9);
  if (ImGui::BeginCombo("##layer", cur.c_str())) {
    if (ImGui::Selectable("mean of layers", heat_layer < 0)) heat_layer = -1;
    for (int l = 0; l < nl; ++l) {
      std::string n = heat_pvm ? "PVM @ layer " + std::to_string(ui.model.pvm_layers[l]) : "layer " + std::to_string(l);
      if (ImGui::Selectable(n.c_str(), heat_layer == l)) heat_layer = l;
    }
    ImGui::EndCombo();
  }
  ImGui::SameLine();
  ImGui::SetNextItemWidth(-1);
  ImGui::SliderFloat("##opacity", &opacity, 0.0f, 1.0f, "opacity %.2f");

  // ---- the picture ----
  if (!img.valid()) {
    ImGui::TextDisabled("No image. Open one, drop a file here, or make a random scene.");
    browser_.draw();
    return;
  }
  if (!tex_) tex_ = std::make_unique<CpuTexture>();
  if (tex_dirty_) {
    std::vector<uint32_t> rgba(size_t(img.width) * img.height);
    for (size_t i = 0; i < rgba.size(); ++i)
      rgba[i] = IM_COL32(img.rgb[i * 3], img.rgb[i * 3 + 1], img.rgb[i * 3 + 2], 255);
    tex_->upload(img.width, img.height, rgba.data());
    tex_dirty_ = false;
    if (!grid_.valid()) grid_ = ctx_.engine->grid_for(img.width, img.height);
  }
  const float caption_h = ImGui::GetTextLineHeightWithSpacing() * 2;
  ImVec2 avail = ImGui::GetContentRegionAvail();
  avail.y -= caption_h;
  if (avail.x < 8 || avail.y < 8) {
    browser_.draw();
    return;
  }
  const float scale = std::min(avail.x / img.width, avail.y / img.height);
  const ImVec2 size(std::floor(img.width * scale), std::floor(img.height * scale));
  ImVec2 p0 = ImGui::GetCursorScreenPos();
  p0.x += std::floor((avail.x - size.x) * 0.5f);
  const ImVec2 p1(p0.x + size.x, p0.y + size.y);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddImage(tex_->id(), p0, p1);

  // The overlay belongs to the image of the last generation: only when the grid still matches.
  const GridInfo& g = ui.grid.valid() ? ui.grid : grid_;
  const bool same_image = ui.settings.image.width == img.width && ui.settings.image.height == img.height &&
                          ui.settings.image.source == img.source;
  std::string caption;
  if (show_heat && ctx_.sel.token >= 0 && same_image && ui.grid.valid()) {
    std::vector<float> h = token_heat(ui, ctx_.sel.side, ctx_.sel.token, heat_pvm, heat_layer);
    if (!h.empty()) {
      float mx = 0;
      for (float v : h) mx = std::max(mx, v);
      const float cw = size.x / g.cols, ch = size.y / g.rows;
      for (int r = 0; r < g.rows; ++r)
        for (int c = 0; c < g.cols; ++c) {
          const float v = mx > 0 ? h[size_t(r) * g.cols + c] / mx : 0.0f;
          dl->AddRectFilled(ImVec2(p0.x + c * cw, p0.y + r * ch), ImVec2(p0.x + (c + 1) * cw, p0.y + (r + 1) * ch),
                            heat_color(v, opacity * (0.25f + 0.75f * v)));
        }
      const auto& tok = ui.of(ctx_.sel.side).tokens[ctx_.sel.token];
      char b[200];
      std::string piece = tok.piece.substr(0, 16);
      for (char& c : piece)
        if (c == '\n') c = ' ';
      std::snprintf(b, sizeof b, "%s t=%d '%s': %s, max %.2g", side_name(ctx_.sel.side), ctx_.sel.token + 1,
                    piece.c_str(), heat_pvm ? "PVM attn" : "attention", double(mx));
      caption = b;
    } else {
      caption = heat_pvm && ctx_.sel.side == Side::Baseline ? "the baseline has no PVM attention: hover a PVM token"
                                                            : "no heatmap recorded for this token";
    }
  } else if (show_heat && ctx_.sel.token >= 0 && !same_image) {
    caption = "heatmaps belong to the image of the last generation";
  } else {
    caption = "hover a token in Compare to see where it looked";
  }
  if (show_grid && g.valid()) {
    const ImU32 gc = IM_COL32(255, 255, 255, 60);
    for (int c = 1; c < g.cols; ++c) {
      const float x = std::round(p0.x + c * size.x / g.cols);
      dl->AddLine(ImVec2(x, p0.y), ImVec2(x, p1.y), gc);
    }
    for (int r = 1; r < g.rows; ++r) {
      const float y = std::round(p0.y + r * size.y / g.rows);
      dl->AddLine(ImVec2(p0.x, y), ImVec2(p1.x, y), gc);
    }
  }
  ImGui::Dummy(ImVec2(avail.x, size.y));
  ImGui::TextDisabled("%s  %dx%d, %dx%d visual tokens", std::filesystem::path(img.source).filename().c_str(),
                      img.width, img.height, g.rows, g.cols);
  ImGui::TextDisabled("%s", caption.c_str());
  browser_.draw();
}

}  // namespace pvm::studio
