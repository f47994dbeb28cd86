// `pvm-studio --bench-generate N`: the studio's generation speed against the CLI's, in one run
// (issue 22 item 4). The demo generates N tokens per side while the window renders at 30 fps; then
// `pvm generate --probe` runs on the same model, adapter, image and prompt, one side after the
// other, and the two throughputs are compared. With a VisMem adapter loaded, the VisMem arm is timed
// too and run as `pvm generate --vismem --no-pvm` (reported beside "both", which stays baseline + PVM).
#pragma once
#include <string>
#include <vector>

#include "views/studio_state.h"

namespace pvm::studio {

struct GenerateBenchFrames {
  std::vector<double> work_ms;      // building + rendering one frame while the model generated
  std::vector<double> interval_ms;  // start to start of consecutive frames (what the user feels)
  double fps = 30;                  // the frame rate the studio streams at (StudioApp::streaming_fps)
};

// Prints the report (and writes it as JSON when json_path is set). Returns the exit code: 0, or 1
// when the CLI could not be run or the run had nothing to compare.
int report_generate_bench(const UiState& ui, const GenerateSettings& settings, const GenerateBenchFrames& frames,
                          const std::string& cli_path, const std::string& json_path);

}  // namespace pvm::studio
