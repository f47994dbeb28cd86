// The Log view: the lines of the studio's log sink (engine/base/log_sink.h), filtered by level and
// text, following the end unless scrolled up.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/base/log_sink.h"
#include "views/view.h"

namespace pvm::studio {

class LogView : public View {
 public:
  LogView();
  void draw() override;

 private:
  void sync();
  std::vector<LogLine> lines_;  // local copy: drawing does not hold the sink's lock
  uint64_t last_seq_ = 0;
  ImGuiTextFilter filter_;
  bool show_[4] = {false, true, true, true};
  bool auto_scroll_ = true;
  bool scroll_to_end_ = false;
};

}  // namespace pvm::studio
