// Model view: open a checkpoint folder (in-app browser) or the default model, device and dtype, the
// PVM adapter (load / remove), and what is loaded: parameters by part, PVM layers, memory. Loading
// runs on the engine's worker; this view shows its progress.
#pragma once
#include <string>

#include "views/file_browser.h"
#include "views/studio_state.h"
#include "views/view.h"

namespace pvm::studio {

class ModelView : public View {
 public:
  explicit ModelView(StudioContext& ctx);
  void draw() override;
  // Starts loading (also used by the app for --model / --pvm); false with a log line when refused.
  // false (and the reason logged, and in *why when given) when the request is refused up front.
  bool load(const std::string& dir, const std::string& adapter = "", std::string* why = nullptr);
  bool load_adapter(const std::string& dir);
  std::string& model_dir() { return dir_; }

 private:
  StudioContext& ctx_;
  FileBrowser browser_;
  std::string dir_, adapter_;
  int device_ = 0, dtype_ = 0;  // indices into the combos
};

}  // namespace pvm::studio
