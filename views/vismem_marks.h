// VisMem's invocation points in an answer, read from the probes the session copied into TokenRec
// (engine/probes.h: `invoked` on a start token, `inserted` on the token the insertion's forward
// produced, `memory_mass` once a memory exists). Pure data, no ImGui: the Compare and Dilution
// views draw them, tests check them.
#pragma once
#include <string>
#include <vector>

#include "views/studio_state.h"

namespace pvm::studio {

struct InvocationMark {
  int token = -1;     // index of the start token in the answer
  std::string type;   // "short" | "long"
  int rows = 0;       // latent rows inserted (0: the insertion's probe was not recorded)
  // What the inserted rows attended to, mean over layers (NaN when not recorded): the prompt's
  // image, the memory's own chunk, everything else.
  float visual, self, other;
};

// What the memory invoked at start token `start` attended to: the InsertedRec of the token its
// insertion produced (a few tokens later), or null.
const InsertedRec* inserted_for(const std::vector<TokenRec>& tokens, int start);
// Every invocation of the answer, in order.
std::vector<InvocationMark> invocation_marks(const std::vector<TokenRec>& tokens);
// Attention on all latent rows so far, mean over layers, per token (NaN before the first memory and
// on the inserted end tokens, which no forward produced).
std::vector<float> memory_mass_curve(const std::vector<TokenRec>& tokens);

}  // namespace pvm::studio
