// Pure logic behind the Gaze replay view (no GL, no ImGui): the playback clock that walks through a
// finished answer token by token at a chosen speed, and the frame plan of an export (which tokens,
// how long each frame shows in an animated GIF).
#pragma once
#include <vector>

namespace pvm::studio {

struct ReplayClock {
  int token = 0;          // the token shown (0-based)
  bool playing = false;
  bool loop = false;      // at the end wrap to the first token instead of stopping
  float speed = 8.0f;     // tokens per second, kMinSpeed..kMaxSpeed
  double carry = 0;       // part of the next token's time already elapsed (seconds * speed)
  static constexpr float kMinSpeed = 0.25f, kMaxSpeed = 120.0f;

  // Advances by dt seconds over an answer of n tokens; true when the token changed. Playing past
  // the last token stops there (or wraps with loop). dt is capped at one second so a stalled frame
  // does not jump far.
  bool tick(double dt, int n);
  void seek(int t, int n);   // clamped to [0, n-1]; drops the carry
  void step(int d, int n) { seek(token + d, n); }
  // Play from the start when at the end (the button's behaviour), else toggle.
  void toggle(int n);
};

// Tokens an export renders: first, first + stride, ... up to last (last always included).
std::vector<int> replay_frames(int first, int last, int stride);
// Display time of one exported frame in 1/100 s for `speed` tokens/s with every `stride`-th token
// rendered (GIF's unit; at least 2, which viewers honour).
int replay_delay_cs(float speed, int stride);

}  // namespace pvm::studio
