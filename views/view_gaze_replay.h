// Gaze replay view: plays a finished answer back token by token (speed in tokens/s, step, scrub,
// loop) on a stage that shows the image of the generation with the attention heatmap of the
// current token, the answer typed out up to that token (highlighted), and the mean visual mass of
// both answers along the positions. Playing drives the shared token cursor, so the Image view,
// the Compare view and the plot cursors follow. Export renders every (stride-th) token's stage
// offscreen (views/capture.h) into PNG frames and an animated GIF (engine/base/gif.h) for talks.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "views/file_browser.h"
#include "views/gaze_replay.h"
#include "views/studio_state.h"
#include "views/view.h"
#include "views/view_compare.h"  // TokenLayout

namespace pvm {
class GifWriter;
}

namespace pvm::studio {

class CpuTexture;

class GazeReplayView : public View {
 public:
  explicit GazeReplayView(StudioContext& ctx);
  ~GazeReplayView() override;
  void draw() override;

  ReplayClock clock;
  Side side = Side::Pvm;
  bool heat_pvm = false;  // the PVM block's attention instead of the backbone's
  int heat_layer = -1;    // -1: mean of layers
  float opacity = 0.6f;

  // Renders tokens 0, stride, 2*stride, ... (and the last) of `side` into <dir>/frame_NNNNN.png and
  // <dir>/replay.gif, one token per UI frame while this view is drawn. keep_png = false deletes
  // the PNG frames once they are in the GIF. False (logged) when there is nothing to replay.
  bool start_export(const std::string& dir, int stride, bool keep_png);
  bool exporting() const { return export_ != nullptr; }
  void cancel_export();
  // Frames written by the last finished export (0 while none finished), and its last error.
  int exported_frames() const { return exported_frames_; }
  const std::string& export_error() const { return export_error_; }

 private:
  struct Export;
  int tokens() const;
  void draw_controls(int n);
  void draw_stage(ImVec2 size, int n);
  void draw_image(ImDrawList* dl, ImVec2 p0, ImVec2 p1);
  void draw_text(ImDrawList* dl, ImVec2 p0, ImVec2 p1);
  void draw_trace(ImDrawList* dl, ImVec2 p0, ImVec2 p1, int n);
  void export_step(ImVec2 min, ImVec2 max, ImDrawList* dl);
  void on_frame_captured(bool ok, const std::string& msg, const std::string& png);
  void finish_export();

  StudioContext& ctx_;
  FileBrowser browser_;
  std::unique_ptr<CpuTexture> tex_;
  std::string tex_source_;
  int tex_w_ = 0, tex_h_ = 0;
  TokenLayout layout_;
  int layout_side_ = -1;
  // Mean over layers of each token's visual mass, per side (the trace under the stage).
  std::vector<float> trace_[2];
  uint64_t trace_run_ = ~0ull;
  // The cursor this view wrote or adopted last (a different one was set by the user elsewhere).
  int last_set_ = 0;
  Side last_side_ = Side::Pvm;
  float image_rect_[4] = {0, 0, 0, 0};  // where the image was drawn last, relative to the stage
  int stride_ = 1;
  bool keep_png_ = true;
  std::unique_ptr<Export> export_;
  int exported_frames_ = 0;
  std::string export_error_;
};

}  // namespace pvm::studio
