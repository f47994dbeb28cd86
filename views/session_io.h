// A studio session on disk: a folder with
//   session.json           settings, prompt, model, grid, answers' summary, view options
//   image.png              the image both answers were generated for
//   answer_baseline.txt, answer_pvm.txt (answer_vismem.txt when there is a VisMem answer)
//   trace_baseline.jsonl, trace_pvm.jsonl (trace_vismem.jsonl)   one JSON object per generated token
//                                                                (probes; VisMem's invocations too)
//   plots/*.csv|png        the plots as shown (written by the app)
// `pvm-studio --open FOLDER` reads it back. Every file is written atomically.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "views/studio_state.h"

namespace pvm::studio {

// Heatmaps are kept in the traces only up to this many floats per side (they dominate the size).
inline constexpr size_t kSessionHeatFloats = size_t(8) << 20;

// Throws pvm::Error ("<file>: problem") on failure. `views` is stored as-is under "views".
void save_session(const std::string& dir, const UiState& ui, const std::string& preset, const nlohmann::json& views);

struct LoadedSession {
  UiState ui;             // sides, grid, settings (image included), model summary
  std::string preset;
  nlohmann::json views;   // what save_session got
};
// Throws pvm::Error naming the file (and line for traces) on missing or malformed content.
LoadedSession load_session(const std::string& dir);

nlohmann::json token_to_json(const TokenRec& t, int index, bool heat);
TokenRec token_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace pvm::studio
