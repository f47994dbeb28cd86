// Model view: open a checkpoint folder (in-app browser) or the default model, device and dtype, the
// PVM adapter (load / remove), the VisMem adapter (load / remove, how the VisMem arm invokes its
// memories), and what is loaded: parameters by part, PVM layers, memory. A picked
// folder is inspected first (its memory plan against the free memory, or why it is no checkpoint);
// loading runs on the engine's worker with a byte progress bar and Cancel.
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
  bool load(const std::string& dir, const std::string& adapter = "", std::string* why = nullptr,
            const std::string& vismem = "");
  bool load_adapter(const std::string& dir);
  // Attaches a VisMem adapter ("" removes it); false with a log line when refused up front.
  bool load_vismem(const std::string& dir);
  std::string& model_dir() { return dir_; }
  std::string& vismem_dir() { return vismem_; }
  // Picks a checkpoint folder without loading it: the engine reads its config and tensor headers
  // and the view shows the memory it needs against what the machine has (or why it cannot load).
  bool select(const std::string& dir);
  double cancel_at = -1;  // scripted runs: LoadRequest::cancel_at of the next load

 private:
  void draw_plan();
  void draw_load_progress();

  StudioContext& ctx_;
  FileBrowser browser_;
  void draw_vismem();
  std::string dir_, adapter_, vismem_;
  std::string inspected_;          // the folder the last inspection was asked for
  double edited_at_ = -1;          // when dir_ was last typed in (inspect once typing stops)
  int device_ = 0, dtype_ = 0;  // indices into the combos
};

}  // namespace pvm::studio
