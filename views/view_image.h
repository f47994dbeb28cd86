// Image view: the picture the model looks at, with its merged patch grid (one cell = one visual
// token) and, for the token under the mouse in the Compare view, a heatmap of where it looked:
// the backbone's attention at a chosen layer (or their mean), or a PVM block's attention. Images
// come from the in-app file browser, drag and drop (the app forwards GLFW drops), or a random scene.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "views/file_browser.h"
#include "views/studio_state.h"
#include "views/view.h"

namespace pvm::studio {

class CpuTexture;

// Decodes an image file (PNG, JPEG, BMP, GIF, ...) as RGB8; false with *error on failure.
bool load_image_file(const std::string& path, ImageData* out, std::string* error);

// The heat values of token `tok` of `side` laid out on the grid (rows*cols), or empty when not
// recorded. layer: -1 mean over layers; pvm: the PVM attention (layer indexes the PVM layers).
std::vector<float> token_heat(const UiState& ui, Side side, int tok, bool pvm, int layer);

class ImageView : public View {
 public:
  explicit ImageView(StudioContext& ctx);
  ~ImageView() override;
  void draw() override;
  bool open_file(const std::string& path, std::string* why = nullptr);  // drag and drop, --image (error logged, and in *why)
  void browse();                            // the in-app file browser (File > Open image)
  bool new_scene(uint64_t seed);            // false (logged) when scenes are not built in
  void set_image(ImageData img);
  // Overlay settings (saved with a session).
  bool show_grid = true, show_heat = true, heat_pvm = false;
  int heat_layer = -1;  // -1 = mean over layers
  float opacity = 0.55f;

 private:
  StudioContext& ctx_;
  FileBrowser browser_;
  std::unique_ptr<CpuTexture> tex_;
  bool tex_dirty_ = true;
  GridInfo grid_;  // of the shown image, from the engine's processor
  uint64_t scene_seed_ = 1;
};

}  // namespace pvm::studio
