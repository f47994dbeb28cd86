#include "views/vismem_marks.h"

#include <algorithm>
#include <cmath>

namespace pvm::studio {
namespace {
float mean(const std::vector<float>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (float x : v) s += x;
  return float(s / double(v.size()));
}
}  // namespace

const InsertedRec* inserted_for(const std::vector<TokenRec>& tokens, int start) {
  // start token, end token (inserted), then the token the insertion's forward produced
  const int last = std::min(int(tokens.size()) - 1, start + 3);
  for (int i = std::max(0, start + 1); i <= last; ++i)
    for (const InsertedRec& r : tokens[size_t(i)].inserted)
      if (r.start == start) return &r;
  return nullptr;
}

std::vector<InvocationMark> invocation_marks(const std::vector<TokenRec>& tokens) {
  std::vector<InvocationMark> out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].invoked.empty()) continue;
    InvocationMark m;
    m.token = int(i);
    m.type = tokens[i].invoked;
    const InsertedRec* r = inserted_for(tokens, int(i));
    m.rows = r ? r->rows : 0;
    m.visual = r ? mean(r->visual) : NAN;
    m.self = r ? mean(r->self) : NAN;
    m.other = r ? mean(r->other) : NAN;
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<float> memory_mass_curve(const std::vector<TokenRec>& tokens) {
  std::vector<float> y(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) y[i] = mean(tokens[i].memory_mass);
  return y;
}

}  // namespace pvm::studio
