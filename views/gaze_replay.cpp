#include "views/gaze_replay.h"

#include <algorithm>
#include <cmath>

namespace pvm::studio {

bool ReplayClock::tick(double dt, int n) {
  if (n <= 0) {
    token = 0, playing = false, carry = 0;
    return false;
  }
  if (token >= n) token = n - 1;
  if (!playing || !(dt > 0)) return false;
  carry += std::min(dt, 1.0) * std::clamp(speed, kMinSpeed, kMaxSpeed);
  const int adv = int(std::floor(carry));
  if (adv == 0) return false;
  carry -= adv;
  const int before = token;
  if (token + adv < n) {
    token += adv;
  } else if (loop) {
    token = (token + adv) % n;
  } else {
    token = n - 1, playing = false, carry = 0;
  }
  return token != before;
}

void ReplayClock::seek(int t, int n) {
  token = n > 0 ? std::clamp(t, 0, n - 1) : 0;
  carry = 0;
}

void ReplayClock::toggle(int n) {
  if (!playing && n > 0 && token >= n - 1 && !loop) seek(0, n);
  playing = !playing && n > 0;
  carry = 0;
}

std::vector<int> replay_frames(int first, int last, int stride) {
  std::vector<int> f;
  if (last < first || first < 0) return f;
  stride = std::max(1, stride);
  for (int t = first; t <= last; t += stride) f.push_back(t);
  if (f.back() != last) f.push_back(last);
  return f;
}

int replay_delay_cs(float speed, int stride) {
  const double s = std::clamp(double(speed), double(ReplayClock::kMinSpeed), double(ReplayClock::kMaxSpeed));
  return std::max(2, int(std::lround(100.0 * std::max(1, stride) / s)));
}

}  // namespace pvm::studio
