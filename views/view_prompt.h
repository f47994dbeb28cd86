// Prompt view: presets from assets/prompts (blind painter, structured reasoning, ...), the free text,
// a system prompt, sampling settings with the seed both sides share, max new tokens (up to 16384),
// which probes to record, and Generate / Stop.
#pragma once
#include <string>
#include <vector>

#include "views/studio_state.h"
#include "views/view.h"

namespace pvm::studio {

// Preset names (file stems of <dir>/*.txt, sorted) and their text.
std::vector<std::string> list_presets(const std::string& dir);
bool read_preset(const std::string& dir, const std::string& name, std::string* text, std::string* error);

class PromptView : public View {
 public:
  explicit PromptView(StudioContext& ctx);
  void draw() override;
  bool generate();  // starts both sides with the draft settings; false (logged) when refused
  bool use_preset(const std::string& name);
  std::string preset;  // last preset applied

 private:
  StudioContext& ctx_;
  std::vector<std::string> presets_;
  std::string dir_;
};

}  // namespace pvm::studio
