// Compare view: the baseline and PVM answers side by side, and the VisMem answer as a third column
// when a VisMem adapter is loaded, streaming token by token. Each token is laid out as its own span
// (layout cached, extended as tokens arrive, redone on width change), so hovering one highlights the
// same position in every answer and sets the shared selection that drives the image overlay and the
// plot cursors; a click pins it. Tokens can be tinted by their visual attention mass. VisMem's
// invocation points are marked on its text (cyan: short-term memory, magenta: long-term), with the
// inserted rows' attention split (image / memory / other) in the tooltip.
#pragma once
#include <string>
#include <vector>

#include "views/studio_state.h"
#include "views/view.h"

namespace pvm::studio {

// Text spans of one answer, wrapped to a width. Pure layout (the measure function is injectable),
// so it is testable without a font atlas.
struct TokenLayout {
  struct Span {
    int token;
    float x, y, w;        // relative to the text origin; y = line index * line height
    uint32_t off, len;    // bytes in `text`
  };
  std::vector<Span> spans;
  std::string text;       // what the spans point into (pieces, newlines removed)
  float width = -1, line_h = 0, x = 0, y = 0;
  size_t tokens = 0;      // tokens laid out so far
  uint64_t run = 0;
  void reset(float w, float lh) { *this = TokenLayout{}; width = w, line_h = lh; }
  // Lays out tokens [tokens, toks.size()); measure(s, e) = pixel width of the bytes [s, e).
  template <class Measure>
  void extend(const std::vector<TokenRec>& toks, Measure measure);
  float height() const { return y + line_h; }
  // Index of the span under (px, py) in layout coordinates, or -1.
  int hit(float px, float py) const;
};

class CompareView : public View {
 public:
  explicit CompareView(StudioContext& ctx);
  void draw() override;
  int color_mode = 1;   // 0 none, 1 visual mass (mean of layers), 2 without sink tokens
  int color_layer = -1; // -1 mean of layers

 private:
  void draw_side(int side, float width, float height, float vmax);
  void vismem_tooltip(const SideData& sd, int token) const;
  StudioContext& ctx_;
  TokenLayout lay_[kSides];
  bool follow_[kSides] = {true, true, true};
  int hovered_ = -1;
  std::vector<float> values_[kSides];  // tint value per token
  float vmax_ = 0;
  uint64_t val_run_ = ~0ull;
  int val_mode_ = -1, val_layer_ = -2;
  Side hovered_side_ = Side::Pvm;
};

// ---- template ----
template <class Measure>
void TokenLayout::extend(const std::vector<TokenRec>& toks, Measure measure) {
  for (; tokens < toks.size(); ++tokens) {
    const std::string& p = toks[tokens].piece;
    size_t i = 0;
    while (i <= p.size()) {
      size_t nl = p.find('\n', i);
      const size_t end = nl == std::string::npos ? p.size() : nl;
      if (end > i || (nl == std::string::npos && i == 0)) {
        const uint32_t off = uint32_t(text.size());
        text.append(p, i, end - i);
        const float w = end > i ? measure(text.data() + off, text.data() + text.size()) : 0.0f;
        if (x > 0 && x + w > width) x = 0, y += line_h;  // wrap before the span
        spans.push_back(Span{int(tokens), x, y, w, off, uint32_t(end - i)});
        x += w;
      }
      if (nl == std::string::npos) break;
      x = 0, y += line_h;  // the newline itself
      i = nl + 1;
    }
  }
}

}  // namespace pvm::studio
