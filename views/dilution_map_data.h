// Pure computation behind the Dilution map view (no GL, no ImGui, no torch): the layer x position
// matrix of visual attention mass of one side's tokens or of the PVM - baseline difference, reduced
// to a pixel width (mean per pixel column) straight from the tokens; the layer x head mean map,
// accumulated incrementally as tokens stream in; colour maps and CSV.
//
// Cost with 36 layers, 32 heads, 16k tokens: a map is one pass over layers x tokens (about 0.6 M
// values per side), the head means only add the tokens that arrived since the last frame.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "views/studio_state.h"

namespace pvm::studio::dmap {

// rows x cols floats, row-major; NaN marks a missing cell (a token without that layer, or a
// position one side of a difference does not have).
struct Matrix {
  int rows = 0, cols = 0;
  std::vector<float> v;
  float at(int r, int c) const { return v[size_t(r) * cols + c]; }
  bool empty() const { return rows == 0 || cols == 0; }
};

// Which value of a token the map shows: TokenRec::mass, or mass_nosink (sinks excluded).
inline const std::vector<float>& mass_of(const TokenRec& t, bool nosink) { return nosink ? t.mass_nosink : t.mass; }

// Full resolution: layers (rows: the most layers any token has) x tokens (columns).
Matrix layer_by_position(const std::vector<TokenRec>& tokens, bool nosink = false);

// Pixel column x of `width` covers source columns [x*cols/width, (x+1)*cols/width) and holds the
// mean of their finite values. width <= 0 or >= cols returns the matrix unchanged.
Matrix decimate_columns(const Matrix& m, int width);

// layer_by_position + decimate_columns in one pass over the tokens (no full-size matrix).
Matrix position_map(const std::vector<TokenRec>& tokens, bool nosink, int width);

// PVM - baseline per position (t-th token of one answer against the t-th of the other), reduced
// like position_map: a pixel column holds the mean difference over the positions it covers that
// both answers have. Columns span the longer answer (past the shorter one: NaN).
Matrix position_map_diff(const std::vector<TokenRec>& baseline, const std::vector<TokenRec>& pvm, bool nosink,
                         int width);

// b - a cell by cell over the union of the shapes (NaN where either is missing).
Matrix difference(const Matrix& a, const Matrix& b);

// Mean over tokens of TokenRec::mass_heads, layers x heads, kept up to date as tokens arrive.
class HeadMeans {
 public:
  // Adds the tokens past those already counted; starts over when `tokens` is shorter than that
  // (a new generation) or after reset().
  void update(const std::vector<TokenRec>& tokens);
  void reset();
  Matrix mean() const;  // empty when no token had per-head data
  size_t counted() const { return counted_; }

 private:
  void grow(int rows, int cols);
  int rows_ = 0, cols_ = 0;
  std::vector<double> sum_;
  std::vector<uint32_t> n_;
  size_t counted_ = 0;
};

// Mean of mass_heads over all tokens at once (the reference HeadMeans must agree with).
Matrix layer_by_head(const std::vector<TokenRec>& tokens);

// Finite min / max (0, 0 when none); max_abs: largest |value| (0 when none).
void range(const Matrix& m, float* lo, float* hi);
float max_abs(const Matrix& m);

// Colour maps, packed RGBA8 as ImGui expects (IM_COL32 order: R in the low byte). t in [0,1].
uint32_t sequential(float t);  // viridis: dark purple -> teal -> yellow
uint32_t diverging(float t);   // blue (0) -> near white (0.5) -> red (1)
inline constexpr uint32_t kMissing = 0xff303030u;  // grey for NaN cells

// RGBA image (top row = row 0): sequential over [lo, hi], or diverging over [lo, hi] (the view
// passes [-a, a] so 0 is the middle colour). NaN cells get kMissing.
std::vector<uint32_t> to_rgba(const Matrix& m, bool diverge, float lo, float hi);

// Token index under pixel x of a map `width` pixels wide showing `cols` tokens (-1 outside).
int column_to_token(float x, float width, int cols);

// CSV: a header "<row_name>,<col_prefix>0,<col_prefix>1,..." then one line per row, NaN cells empty.
std::string to_csv(const Matrix& m, const std::string& row_name, const std::string& col_prefix);

}  // namespace pvm::studio::dmap
