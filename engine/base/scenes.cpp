#include "engine/base/scenes.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <set>

#include "engine/base/error.h"

namespace pvm::scenes {

using nlohmann::json;

namespace {

// ---------------------------------------------------------------- PRNG (splitmix64)
// Our own generator: std::uniform_*_distribution output differs between standard libraries.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() { return mix64(s += 0x9e3779b97f4a7c15ULL); }
  // Uniform in [0, n): modulo bias is below 2^-50 for our n, and the result is exact everywhere.
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
};

// ---------------------------------------------------------------- vocabulary
const std::vector<std::string> kShapes{"circle", "square", "triangle", "diamond", "star", "cross"};
const std::vector<std::string> kShapesPlural{"circles", "squares", "triangles", "diamonds", "stars", "crosses"};
const std::vector<std::string> kColors{"red", "orange", "yellow", "green", "cyan", "blue", "purple", "white"};
const std::array<std::array<uint8_t, 3>, 8> kRgb{{{230, 40, 40},
                                                  {255, 140, 0},
                                                  {250, 225, 30},
                                                  {40, 190, 60},
                                                  {40, 210, 220},
                                                  {40, 80, 240},
                                                  {160, 60, 210},
                                                  {245, 245, 245}}};
const std::array<uint8_t, 3> kBackground{40, 40, 44};
const std::vector<std::string> kSizes{"small", "large"};
const std::vector<std::string> kTextures{"solid", "striped", "dotted"};
const std::vector<std::string> kRows{"top", "second", "third", "bottom"};
const std::vector<std::string> kCols{"first", "second", "third", "fourth"};
const std::vector<std::string> kOrdinals{"first",   "second",  "third",      "fourth",     "fifth",     "sixth",
                                         "seventh", "eighth",  "ninth",      "tenth",      "eleventh",  "twelfth",
                                         "thirteenth", "fourteenth", "fifteenth", "sixteenth"};

int index_of(const std::vector<std::string>& v, const std::string& w) {
  auto it = std::find(v.begin(), v.end(), w);
  return it == v.end() ? -1 : static_cast<int>(it - v.begin());
}

// 5x7 digit glyphs, one row per entry, bit 4 = leftmost column.
const uint8_t kDigitGlyph[10][7] = {
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},  // 0
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},  // 1
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F},  // 2
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},  // 3
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02},  // 4
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},  // 5
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E},  // 6
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},  // 7
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E},  // 8
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},  // 9
};

// Unit 5-pointed star (outer radius 1000, inner 450), y down, shifted by +95 so that its bounding
// box is vertically centred. Hard-coded so no libm call can change a pixel across platforms.
const int kStar[10][2] = {{0, -905},  {265, -269}, {951, -214}, {428, 234},  {588, 904},
                          {0, 545},   {-588, 904}, {-428, 234}, {-951, -214}, {-265, -269}};

// ---------------------------------------------------------------- geometry (integer 1/8-px units)
struct Geom {
  int64_t cx, cy, r;  // centre and radius in 1/8 px
  int shape;
};

bool inside_triangle(int64_t dx, int64_t dy, int64_t r) {
  // Vertices (0,-0.9r), (0.96r,0.72r), (-0.96r,0.72r), clockwise in y-down coordinates.
  const int64_t ax = 0, ay = -r * 90 / 100, bx = r * 96 / 100, by = r * 72 / 100, cxv = -bx, cyv = by;
  auto side = [&](int64_t x0, int64_t y0, int64_t x1, int64_t y1) { return (x1 - x0) * (dy - y0) - (y1 - y0) * (dx - x0); };
  return side(ax, ay, bx, by) >= 0 && side(bx, by, cxv, cyv) >= 0 && side(cxv, cyv, ax, ay) >= 0;
}

bool inside_star(int64_t dx, int64_t dy, int64_t r) {
  bool in = false;
  for (int i = 0, j = 9; i < 10; j = i++) {
    const int64_t xi = r * kStar[i][0] / 1000, yi = r * kStar[i][1] / 1000;
    const int64_t xj = r * kStar[j][0] / 1000, yj = r * kStar[j][1] / 1000;
    if ((yi > dy) != (yj > dy)) {
      // dx < xi + (dy - yi) * (xj - xi) / (yj - yi), without division.
      const int64_t lhs = (dx - xi) * (yj - yi), rhs = (dy - yi) * (xj - xi);
      if (yj > yi ? lhs < rhs : lhs > rhs) in = !in;
    }
  }
  return in;
}

bool inside_shape(int shape, int64_t dx, int64_t dy, int64_t r) {
  const int64_t ax = dx < 0 ? -dx : dx, ay = dy < 0 ? -dy : dy;
  switch (shape) {
    case 0: return dx * dx + dy * dy <= r * r;                  // circle
    case 1: return ax <= r * 80 / 100 && ay <= r * 80 / 100;     // square
    case 2: return inside_triangle(dx, dy, r);                  // triangle
    case 3: return ax + ay <= r;                                // diamond
    case 4: return inside_star(dx, dy, r);                      // star
    default: {                                                  // cross (plus sign)
      const int64_t w = r * 30 / 100, l = r * 95 / 100;
      return (ax <= w && ay <= l) || (ay <= w && ax <= l);
    }
  }
}

// Cell geometry: all in 1/8 px. The cell of (row, col) spans [col*W/4, (col+1)*W/4) px.
int64_t cell_x0(const SceneOptions& o, int col) { return int64_t(col) * o.width * 2; }
int64_t cell_y0(const SceneOptions& o, int row) { return int64_t(row) * o.height * 2; }
int64_t cell_w(const SceneOptions& o) { return int64_t(o.width) * 2; }
int64_t cell_h(const SceneOptions& o) { return int64_t(o.height) * 2; }
int64_t radius8(const SceneOptions& o, int size) {
  const int64_t c = std::min(cell_w(o), cell_h(o));
  return size == 1 ? c * 40 / 100 : c * 25 / 100;
}

// ---------------------------------------------------------------- description helpers
std::string cell_phrase(int row, int col) { return "the " + kRows[row] + " row, " + kCols[col] + " column"; }

// Nearest other object by Manhattan cell distance; ties go to the earlier one in reading order.
int nearest(const std::vector<Object>& objs, size_t i) {
  int best = -1, best_d = 1 << 30;
  for (size_t j = 0; j < objs.size(); ++j) {
    if (j == i) continue;
    int d = std::abs(objs[i].row - objs[j].row) + std::abs(objs[i].col - objs[j].col);
    if (d < best_d) best_d = d, best = static_cast<int>(j);
  }
  return best;
}

std::string relation_word(const Object& a, const Object& b) {
  const int dr = a.row - b.row, dc = a.col - b.col;
  if (std::abs(dc) >= std::abs(dr)) return dc < 0 ? "left of" : "right of";
  return dr < 0 ? "above" : "below";
}

std::string short_name(const Object& o) { return o.size + " " + o.color + " " + o.shape; }

std::string relation_clause(const std::vector<Object>& objs, size_t i) {
  int j = nearest(objs, i);
  if (j < 0) return "";
  return relation_word(objs[i], objs[j]) + " the " + short_name(objs[j]);
}

std::string attribute_phrase(const Object& o, const SceneOptions& opt) {
  std::string s = o.size + " " + o.color + " ";
  if (opt.textures) s += o.texture + " ";
  s += o.shape;
  if (opt.digits) s += " with the digit " + std::to_string(o.digit);
  return s;
}

std::vector<Object> sorted_objects(const Scene& s) {
  auto objs = s.objects;
  std::stable_sort(objs.begin(), objs.end(), [](const Object& a, const Object& b) {
    return a.row * kGrid + a.col < b.row * kGrid + b.col;
  });
  return objs;
}

bool is_number(const std::string& w) { return !w.empty() && std::isdigit(static_cast<unsigned char>(w[0])); }

// ---------------------------------------------------------------- lenient sentence parser
struct Sentence {
  bool intro = false;
  int count = -1;
  bool has_cell = false;
  int row = -1, col = -1;
  int size = -1, color = -1, texture = -1, shape = -1, digit = -1;
  std::string said;
  std::string relation;  // e.g. "left of the small blue square" (as parsed; "" if none)
};

int parse_small_int(const std::string& w) {
  if (!is_number(w) || w.size() > 3) return -1;
  return std::atoi(w.c_str());
}

Sentence parse_sentence(const std::vector<std::string>& w) {
  Sentence s;
  if (std::find(w.begin(), w.end(), "shows") != w.end()) {
    s.intro = true;
    for (size_t i = 0; i < w.size(); ++i)
      if (w[i] == "shows" && i + 1 < w.size()) s.count = parse_small_int(w[i + 1]);
    return s;
  }
  // The cell: "<row word> row" ... "<col word> column", the first such pair.
  size_t ri = w.size(), ci = w.size();
  for (size_t i = 1; i < w.size(); ++i)
    if (w[i] == "row" && index_of(kRows, w[i - 1]) >= 0) {
      ri = i;
      break;
    }
  for (size_t i = ri + 1; i < w.size(); ++i)
    if (w[i] == "column" && index_of(kCols, w[i - 1]) >= 0) {
      ci = i;
      break;
    }
  if (ri >= w.size() || ci >= w.size()) return s;
  s.has_cell = true;
  s.row = index_of(kRows, w[ri - 1]);
  s.col = index_of(kCols, w[ci - 1]);
  // Attributes: the words after "<col> column ," up to the next comma ("..., a large red star, left of ...").
  size_t begin = ci + 1;
  if (begin < w.size() && w[begin] == ",") ++begin;
  size_t end = begin;
  while (end < w.size() && w[end] != ",") ++end;
  for (size_t i = begin; i < end; ++i) {
    const auto& x = w[i];
    int k;
    if (s.size < 0 && (k = index_of(kSizes, x)) >= 0) s.size = k;
    else if (s.color < 0 && (k = index_of(kColors, x)) >= 0) s.color = k;
    else if (s.texture < 0 && (k = index_of(kTextures, x)) >= 0) s.texture = k;
    else if (s.shape < 0 && (k = index_of(kShapes, x)) >= 0) s.shape = k;
    else if (x == "digit" && i + 1 < end && (k = parse_small_int(w[i + 1])) >= 0 && k <= 9) s.digit = k;
    if (index_of(kSizes, x) >= 0 || index_of(kColors, x) >= 0 || index_of(kTextures, x) >= 0 ||
        index_of(kShapes, x) >= 0 || (is_number(x) && i > 0 && w[i - 1] == "digit"))
      s.said += (s.said.empty() ? "" : " ") + x;
  }
  // Relation: the words after the attributes, without punctuation.
  for (size_t i = end; i < w.size(); ++i)
    if (w[i] != ",") s.relation += (s.relation.empty() ? "" : " ") + w[i];
  return s;
}

std::vector<std::vector<std::string>> split_sentences(const std::string& text) {
  std::vector<std::vector<std::string>> out(1);
  for (auto& w : words(text)) {
    if (w == ".") {
      if (!out.back().empty()) out.emplace_back();
    } else {
      out.back().push_back(w);
    }
  }
  if (out.back().empty()) out.pop_back();
  return out;
}

// ---------------------------------------------------------------- JSON helpers
[[noreturn]] void bad(const std::string& where, const std::string& what) { throw file_error(where, what); }

const json& field(const json& j, const char* key, const std::string& where, const std::string& path) {
  if (!j.is_object()) bad(where, path + " must be an object");
  auto it = j.find(key);
  if (it == j.end()) bad(where, path + " has no \"" + key + "\"");
  return *it;
}

int get_int(const json& j, const char* key, const std::string& where, const std::string& path, int lo, int hi) {
  const json& v = field(j, key, where, path);
  if (!v.is_number_integer()) bad(where, path + "." + key + " must be an integer");
  auto x = v.get<int64_t>();
  if (x < lo || x > hi)
    bad(where, path + "." + key + " = " + std::to_string(x) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
  return static_cast<int>(x);
}

std::string get_name(const json& j, const char* key, const std::string& where, const std::string& path,
                     const std::vector<std::string>& allowed) {
  const json& v = field(j, key, where, path);
  if (!v.is_string()) bad(where, path + "." + key + " must be a string");
  auto s = v.get<std::string>();
  if (index_of(allowed, s) < 0) bad(where, path + "." + key + " = \"" + s + "\" is not a known " + key);
  return s;
}

float get_float(const json& j, const char* key, const std::string& where, const std::string& path) {
  const json& v = field(j, key, where, path);
  if (!v.is_number()) bad(where, path + "." + key + " must be a number");
  double x = v.get<double>();
  if (!(x >= -1e6 && x <= 1e6)) bad(where, path + "." + key + " is out of range");
  return static_cast<float>(x);
}

bool get_bool(const json& j, const char* key, const std::string& where, const std::string& path, bool def) {
  auto it = j.find(key);
  if (it == j.end()) return def;
  if (!it->is_boolean()) bad(where, path + "." + key + " must be true or false");
  return it->get<bool>();
}

std::string lower_trim(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

// ================================================================= public API

const std::vector<std::string>& shape_names() { return kShapes; }
const std::vector<std::string>& color_names() { return kColors; }
const std::vector<std::string>& size_names() { return kSizes; }
const std::vector<std::string>& texture_names() { return kTextures; }

std::array<uint8_t, 3> color_rgb(const std::string& color) {
  int i = index_of(kColors, color);
  if (i < 0) throw Error("scenes: unknown color \"" + color + "\"");
  return kRgb[static_cast<size_t>(i)];
}
std::array<uint8_t, 3> background_rgb() { return kBackground; }

void SceneOptions::validate(const std::string& where) const {
  if (width < 64 || width > 4096 || height < 64 || height > 4096)
    bad(where, "image size " + std::to_string(width) + "x" + std::to_string(height) + " is outside 64..4096");
  if (min_objects < 1 || max_objects > kGrid * kGrid || min_objects > max_objects)
    bad(where, "object count range " + std::to_string(min_objects) + "-" + std::to_string(max_objects) +
                   " must satisfy 1 <= min <= max <= 16");
}

void parse_objects_option(const std::string& value, SceneOptions& opt, const std::string& option) {
  auto num = [&](const std::string& t) {
    if (t.empty() || t.size() > 3 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }))
      throw Error(option + ": expected MIN-MAX or N with 1 <= MIN <= MAX <= 16, got '" + value + "'");
    return std::atoi(t.c_str());
  };
  const auto dash = value.find('-');
  const int lo = num(value.substr(0, dash)), hi = dash == std::string::npos ? lo : num(value.substr(dash + 1));
  if (lo < 1 || hi > kGrid * kGrid || lo > hi)
    throw Error(option + ": expected MIN-MAX or N with 1 <= MIN <= MAX <= 16, got '" + value + "'");
  opt.min_objects = lo;
  opt.max_objects = hi;
}

uint64_t scene_seed(uint64_t base, int split, uint64_t index) {
  // mix64 is a bijection, so distinct (2*index + split) give distinct seeds for a fixed base.
  return mix64(mix64(base) + 2 * index + static_cast<uint64_t>(split & 1));
}

uint64_t qa_seed(uint64_t seed) { return seed ^ 0x9a0b1c2d3e4f5061ULL; }

Scene generate(uint64_t seed, const SceneOptions& opt) {
  opt.validate("scene options");
  Scene sc;
  sc.seed = seed;
  sc.options = opt;
  Rng rng(seed);
  const int n = opt.min_objects + rng.below(opt.max_objects - opt.min_objects + 1);
  std::array<int, kGrid * kGrid> cells;
  for (int i = 0; i < kGrid * kGrid; ++i) cells[i] = i;
  for (int i = 0; i < n; ++i) std::swap(cells[i], cells[i + rng.below(kGrid * kGrid - i)]);
  std::sort(cells.begin(), cells.begin() + n);
  for (int i = 0; i < n; ++i) {
    Object o;
    o.row = cells[i] / kGrid;
    o.col = cells[i] % kGrid;
    // Every draw happens whatever the options, so turning textures/digits on keeps the layout.
    const int shape = rng.below(6), color = rng.below(8), size = rng.below(2), texture = rng.below(3), digit = rng.below(10);
    o.shape = kShapes[shape];
    o.color = kColors[color];
    o.size = kSizes[size];
    o.texture = opt.textures ? kTextures[texture] : "solid";
    o.digit = opt.digits ? digit : -1;
    const int64_t r = radius8(opt, size), margin = 16;  // 2 px from the cell border
    const int64_t jx = std::max<int64_t>(0, cell_w(opt) / 2 - r - margin), jy = std::max<int64_t>(0, cell_h(opt) / 2 - r - margin);
    const int64_t ox = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(2 * jx + 1)) - jx;
    const int64_t oy = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(2 * jy + 1)) - jy;
    o.cx = static_cast<float>(cell_x0(opt, o.col) + cell_w(opt) / 2 + ox) / 8.0f;
    o.cy = static_cast<float>(cell_y0(opt, o.row) + cell_h(opt) / 2 + oy) / 8.0f;
    o.radius = static_cast<float>(r) / 8.0f;
    sc.objects.push_back(o);
  }
  return sc;
}

Image render(const Scene& scene) {
  const auto& opt = scene.options;
  opt.validate("scene " + std::to_string(scene.seed));
  Image img;
  img.width = opt.width;
  img.height = opt.height;
  img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
  for (size_t i = 0; i < img.rgb.size(); i += 3) std::copy(kBackground.begin(), kBackground.end(), img.rgb.begin() + i);
  const int64_t cell8 = std::min(cell_w(opt), cell_h(opt));
  const int64_t stripe = std::max<int64_t>(16, cell8 / 16), dot_step = std::max<int64_t>(24, cell8 / 8), dot_r = dot_step * 3 / 10;
  for (const auto& o : scene.objects) {
    const int shape = index_of(kShapes, o.shape), color = index_of(kColors, o.color);
    if (shape < 0 || color < 0) throw Error("scene " + std::to_string(scene.seed) + ": unknown shape or color");
    const int64_t cx = std::llround(double(o.cx) * 8), cy = std::llround(double(o.cy) * 8), r = std::llround(double(o.radius) * 8);
    if (r <= 0) continue;
    const auto& base = kRgb[static_cast<size_t>(color)];
    const std::array<int, 3> fill{base[0], base[1], base[2]};
    const std::array<int, 3> shade{base[0] / 2, base[1] / 2, base[2] / 2};
    const bool light = 299 * base[0] + 587 * base[1] + 114 * base[2] > 140000;
    const std::array<int, 3> ink = light ? std::array<int, 3>{15, 15, 15} : std::array<int, 3>{255, 255, 255};
    const int texture = opt.textures ? std::max(0, index_of(kTextures, o.texture)) : 0;
    // Digit glyph box: 5x7 units of gu, centred on the shape's visual centre.
    const bool digit = opt.digits && o.digit >= 0 && o.digit <= 9;
    const int64_t gu = std::max<int64_t>(8, r / 7);
    const int64_t yoff = shape == 2 ? r * 20 / 100 : shape == 4 ? r * 10 / 100 : 0;
    const int64_t gx0 = cx - 5 * gu / 2, gy0 = cy + yoff - 7 * gu / 2;
    const int x0 = std::max<int64_t>(0, (cx - r) / 8 - 1), x1 = std::min<int64_t>(img.width - 1, (cx + r) / 8 + 1);
    const int y0 = std::max<int64_t>(0, (cy - r) / 8 - 1), y1 = std::min<int64_t>(img.height - 1, (cy + r) / 8 + 1);
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) {
        uint8_t* px = &img.rgb[(static_cast<size_t>(y) * img.width + x) * 3];
        int covered = 0, sum[3] = {0, 0, 0};
        for (int sy = 0; sy < 4; ++sy)
          for (int sx = 0; sx < 4; ++sx) {
            const int64_t X = int64_t(x) * 8 + 2 * sx + 1, Y = int64_t(y) * 8 + 2 * sy + 1;  // sample centre
            const int64_t dx = X - cx, dy = Y - cy;
            if (!inside_shape(shape, dx, dy, r)) continue;
            ++covered;
            const int* c = fill.data();
            if (texture == 1 && ((X + Y) / stripe) % 2 == 1) c = shade.data();
            if (texture == 2) {
              const int64_t mx = ((dx % dot_step) + dot_step) % dot_step - dot_step / 2;
              const int64_t my = ((dy % dot_step) + dot_step) % dot_step - dot_step / 2;
              if (mx * mx + my * my <= dot_r * dot_r) c = shade.data();
            }
            if (digit && X >= gx0 && X < gx0 + 5 * gu && Y >= gy0 && Y < gy0 + 7 * gu) {
              const int gcol = static_cast<int>((X - gx0) / gu), grow = static_cast<int>((Y - gy0) / gu);
              if (kDigitGlyph[o.digit][grow] & (0x10 >> gcol)) c = ink.data();
            }
            for (int k = 0; k < 3; ++k) sum[k] += c[k];
          }
        if (!covered) continue;
        // Blend over what is already there (the background: objects never share pixels).
        for (int k = 0; k < 3; ++k) px[k] = static_cast<uint8_t>((sum[k] + px[k] * (16 - covered) + 8) / 16);
      }
  }
  return img;
}

std::string describe_prompt() {
  return "Describe every object in the image for a blind painter, row by row, from the top left to the bottom right.";
}

std::string answer_format_instruction() {
  return "Think inside <think></think>, then give only the final answer, one word or number, inside <answer></answer>.";
}

std::string qa_prompt(const QAItem& q) { return q.question + " " + answer_format_instruction(); }

std::string qa_completion(const QAItem& q) { return "<think>" + q.reasoning + "</think><answer>" + q.answer + "</answer>"; }

std::string extract_answer(const std::string& generated) {
  std::string s = generated;
  auto b = s.find("<answer>");
  if (b != std::string::npos) {
    b += 8;
    auto e = s.find("</answer>", b);
    s = s.substr(b, e == std::string::npos ? std::string::npos : e - b);
  } else {
    // Bare text: drop a <think> block if present.
    auto te = s.find("</think>");
    if (te != std::string::npos) s = s.substr(te + 8);
  }
  s = lower_trim(s);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return lower_trim(s);
}

bool answer_correct(const std::string& generated, const std::string& truth) {
  auto a = extract_answer(generated);
  return !a.empty() && a == lower_trim(truth);
}

std::string describe(const Scene& scene) {
  const auto objs = sorted_objects(scene);
  const auto& opt = scene.options;
  const size_t n = objs.size();
  std::string s = "The image shows " + std::to_string(n) + (n == 1 ? " object" : " objects") +
                  " on a dark gray background, in a grid of 4 rows and 4 columns.";
  for (size_t i = 0; i < n; ++i) {
    // Cell first, then what is there: the cell words act as the model's pointer, so the attributes
    // become a lookup at a cell it has already named (a small decoder cannot find "the next object"
    // and read its colour in the same token).
    s += " Object " + std::to_string(i + 1) + " is in " + cell_phrase(objs[i].row, objs[i].col) + ", a " +
         attribute_phrase(objs[i], opt);
    auto rel = relation_clause(objs, i);
    if (!rel.empty()) s += ", " + rel;
    s += ".";
  }
  return s;
}

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(cur), cur.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (std::isalpha(c)) {
      if (!cur.empty() && std::isdigit(static_cast<unsigned char>(cur[0]))) flush();
      cur += static_cast<char>(std::tolower(c));
    } else if (std::isdigit(c)) {
      if (!cur.empty() && !std::isdigit(static_cast<unsigned char>(cur[0]))) flush();
      cur += static_cast<char>(c);
    } else {
      flush();
      if (c == '.' || c == ',') out.emplace_back(1, static_cast<char>(c));
    }
  }
  flush();
  return out;
}

std::optional<Scene> parse_description(const std::string& text, const SceneOptions& opt) {
  auto sentences = split_sentences(text);
  if (sentences.empty()) return std::nullopt;
  Sentence intro = parse_sentence(sentences[0]);
  if (!intro.intro || intro.count != static_cast<int>(sentences.size()) - 1) return std::nullopt;
  Scene sc;
  sc.options = opt;
  std::set<int> seen;
  for (size_t i = 1; i < sentences.size(); ++i) {
    Sentence s = parse_sentence(sentences[i]);
    if (!s.has_cell || s.size < 0 || s.color < 0 || s.shape < 0) return std::nullopt;
    if (opt.textures != (s.texture >= 0) || opt.digits != (s.digit >= 0)) return std::nullopt;
    if (!seen.insert(s.row * kGrid + s.col).second) return std::nullopt;
    Object o;
    o.row = s.row, o.col = s.col;
    o.size = kSizes[s.size], o.color = kColors[s.color], o.shape = kShapes[s.shape];
    o.texture = s.texture >= 0 ? kTextures[s.texture] : "solid";
    o.digit = s.digit;
    sc.objects.push_back(o);
  }
  // Exactness: the recovered scene must describe back to the very same text.
  if (describe(sc) != text) return std::nullopt;
  return sc;
}

Grade grade(const Scene& truth, const std::string& description) {
  Grade g;
  const auto objs = sorted_objects(truth);
  const auto& opt = truth.options;
  std::map<int, size_t> by_cell;
  for (size_t i = 0; i < objs.size(); ++i) {
    by_cell[objs[i].row * kGrid + objs[i].col] = i;
    ObjectGrade og;
    og.position = static_cast<int>(i) + 1;
    og.row = objs[i].row, og.col = objs[i].col;
    og.attributes_total = 3 + (opt.textures ? 1 : 0) + (opt.digits ? 1 : 0);
    g.objects.push_back(og);
  }
  int sentence_index = 0;
  for (auto& w : split_sentences(description)) {
    Sentence s = parse_sentence(w);
    if (s.intro) {
      if (!g.count_stated) {
        g.count_stated = true;
        g.count_ok = s.count == static_cast<int>(objs.size());
      }
      continue;
    }
    if (!s.has_cell) {
      ++g.unparsed_sentences;
      continue;
    }
    const int idx = sentence_index++;
    auto it = by_cell.find(s.row * kGrid + s.col);
    if (it == by_cell.end() || g.objects[it->second].matched) {
      ++g.hallucinated;
      continue;
    }
    const Object& t = objs[it->second];
    ObjectGrade& og = g.objects[it->second];
    og.matched = true;
    og.sentence = idx;
    og.said = s.said;
    og.shape_ok = s.shape >= 0 && kShapes[s.shape] == t.shape;
    og.color_ok = s.color >= 0 && kColors[s.color] == t.color;
    og.size_ok = s.size >= 0 && kSizes[s.size] == t.size;
    og.texture_ok = opt.textures && s.texture >= 0 && kTextures[s.texture] == t.texture;
    og.digit_ok = opt.digits && s.digit >= 0 && s.digit == t.digit;
    og.attributes_correct = og.shape_ok + og.color_ok + og.size_ok + (opt.textures ? og.texture_ok : 0) + (opt.digits ? og.digit_ok : 0);
    og.relation_ok = !s.relation.empty() && s.relation == relation_clause(objs, it->second);
  }
  for (auto& og : g.objects) {
    if (!og.matched) ++g.missing;
    g.attributes_total += og.attributes_total;
    g.attributes_correct += og.attributes_correct;
  }
  g.accuracy = g.attributes_total ? double(g.attributes_correct) / g.attributes_total : 0.0;
  return g;
}

json Grade::to_json() const {
  json objs = json::array();
  for (auto& o : objects)
    objs.push_back({{"position", o.position},
                    {"row", o.row},
                    {"col", o.col},
                    {"matched", o.matched},
                    {"sentence", o.sentence},
                    {"attributes_total", o.attributes_total},
                    {"attributes_correct", o.attributes_correct},
                    {"shape_ok", o.shape_ok},
                    {"color_ok", o.color_ok},
                    {"size_ok", o.size_ok},
                    {"texture_ok", o.texture_ok},
                    {"digit_ok", o.digit_ok},
                    {"relation_ok", o.relation_ok},
                    {"said", o.said}});
  return {{"objects", objs},
          {"hallucinated", hallucinated},
          {"missing", missing},
          {"unparsed_sentences", unparsed_sentences},
          {"attributes_total", attributes_total},
          {"attributes_correct", attributes_correct},
          {"accuracy", accuracy},
          {"count_stated", count_stated},
          {"count_ok", count_ok}};
}

// ---------------------------------------------------------------- questions
std::vector<QAItem> questions(const Scene& scene, uint64_t seed, int n) {
  std::vector<QAItem> out;
  const auto objs = sorted_objects(scene);
  if (n <= 0 || objs.empty()) return out;
  const auto& opt = scene.options;
  Rng rng(mix64(seed ^ 0x5c3e5a11ULL));
  std::set<std::string> asked;
  const std::vector<std::string> kinds{"count", "color_at", "relation", "kth_attribute"};
  const int start = rng.below(4);
  auto where = [&](const Object& o) { return cell_phrase(o.row, o.col); };

  auto make_count = [&]() {
    QAItem q;
    q.kind = "count";
    const int pick = rng.below(10);
    std::vector<const Object*> hit;
    std::string what;
    if (pick < 5) {  // a colour: mostly one that is present, sometimes any (the answer may be 0)
      const std::string c = rng.below(4) ? objs[static_cast<size_t>(rng.below(int(objs.size())))].color : kColors[rng.below(8)];
      for (auto& o : objs) if (o.color == c) hit.push_back(&o);
      q.question = "How many " + c + " objects are there?";
      what = c + " objects";
    } else if (pick < 9) {
      const int si = rng.below(4) ? index_of(kShapes, objs[static_cast<size_t>(rng.below(int(objs.size())))].shape) : rng.below(6);
      for (auto& o : objs) if (o.shape == kShapes[si]) hit.push_back(&o);
      q.question = "How many " + kShapesPlural[si] + " are there?";
      what = kShapesPlural[si];
    } else {
      for (auto& o : objs) hit.push_back(&o);
      q.question = "How many objects are there?";
      what = "objects";
    }
    q.answer = std::to_string(hit.size());
    if (hit.empty()) {
      q.reasoning = "There are no " + what + ", so the count is 0.";
    } else {
      q.reasoning = "The " + what + " are in ";
      for (size_t i = 0; i < hit.size(); ++i)
        q.reasoning += (i ? (i + 1 == hit.size() ? " and " : "; ") : "") + where(*hit[i]);
      q.reasoning += ", so the count is " + q.answer + ".";
    }
    return q;
  };
  auto make_color_at = [&]() {
    QAItem q;
    q.kind = "color_at";
    const Object& o = objs[static_cast<size_t>(rng.below(int(objs.size())))];
    q.question = "What color is the object in " + where(o) + "?";
    q.answer = o.color;
    q.reasoning = "The object in " + where(o) + " is a " + attribute_phrase(o, opt) + ".";
    return q;
  };
  auto make_relation = [&]() -> std::optional<QAItem> {
    // Two objects that a colour + shape names uniquely.
    std::map<std::string, int> name_count;
    for (auto& o : objs) ++name_count[o.color + " " + o.shape];
    std::vector<const Object*> uniq;
    for (auto& o : objs) if (name_count[o.color + " " + o.shape] == 1) uniq.push_back(&o);
    if (uniq.size() < 2) return std::nullopt;
    const int ia = rng.below(int(uniq.size()));
    int ib = rng.below(int(uniq.size()) - 1);
    if (ib >= ia) ++ib;
    const Object &a = *uniq[size_t(ia)], &b = *uniq[size_t(ib)];
    const bool want_yes = rng.below(2) == 0;
    const std::vector<std::pair<std::string, bool>> rels{
        {"left of", a.col < b.col}, {"right of", a.col > b.col}, {"above", a.row < b.row}, {"below", a.row > b.row}};
    std::vector<size_t> fit;
    for (size_t i = 0; i < rels.size(); ++i) if (rels[i].second == want_yes) fit.push_back(i);
    if (fit.empty()) return std::nullopt;
    const auto& rel = rels[fit[size_t(rng.below(int(fit.size())))]];
    QAItem q;
    q.kind = "relation";
    q.question = "Is the " + a.color + " " + a.shape + " " + rel.first + " the " + b.color + " " + b.shape + "?";
    q.answer = rel.second ? "yes" : "no";
    q.reasoning = "The " + a.color + " " + a.shape + " is in " + where(a) + " and the " + b.color + " " + b.shape + " is in " +
                  where(b) + ".";
    return q;
  };
  auto make_kth = [&]() {
    QAItem q;
    q.kind = "kth_attribute";
    const size_t k = size_t(rng.below(int(objs.size())));
    const Object& o = objs[k];
    std::vector<std::string> attrs{"shape", "color", "size"};
    if (opt.textures) attrs.push_back("texture");
    if (opt.digits) attrs.push_back("digit");
    const std::string attr = attrs[size_t(rng.below(int(attrs.size())))];
    const std::string nth = "the " + kOrdinals[k] + " object in reading order";
    if (attr == "digit") {
      q.question = "What digit is on " + nth + "?";
      q.answer = std::to_string(o.digit);
    } else {
      q.question = "What " + attr + " is " + nth + "?";
      q.answer = attr == "shape" ? o.shape : attr == "color" ? o.color : attr == "size" ? o.size : o.texture;
    }
    q.reasoning = "Reading row by row from the top left, the " + kOrdinals[k] + " object is in " + where(o) + ", the " +
                  attribute_phrase(o, opt) + ".";
    return q;
  };

  for (int i = 0, tries = 0; int(out.size()) < n && tries < 40 * n; ++i, ++tries) {
    const std::string& kind = kinds[size_t((start + i) % 4)];
    std::optional<QAItem> q;
    if (kind == "count") q = make_count();
    else if (kind == "color_at") q = make_color_at();
    else if (kind == "relation") q = make_relation();
    else q = make_kth();
    if (q && asked.insert(q->question).second) out.push_back(*q);
  }
  return out;
}

// ---------------------------------------------------------------- JSON
json to_json(const Scene& scene) {
  json objs = json::array();
  for (auto& o : scene.objects)
    objs.push_back({{"shape", o.shape},
                    {"color", o.color},
                    {"size", o.size},
                    {"texture", o.texture},
                    {"digit", o.digit},
                    {"row", o.row},
                    {"col", o.col},
                    {"cx", o.cx},
                    {"cy", o.cy},
                    {"radius", o.radius}});
  const auto& p = scene.options;
  return {{"seed", scene.seed},
          {"options",
           {{"width", p.width},
            {"height", p.height},
            {"min_objects", p.min_objects},
            {"max_objects", p.max_objects},
            {"textures", p.textures},
            {"digits", p.digits}}},
          {"objects", objs}};
}

Scene from_json(const json& j, const std::string& where) {
  if (!j.is_object()) bad(where, "a scene must be a JSON object");
  Scene sc;
  const json& seed = field(j, "seed", where, "scene");
  if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<int64_t>() >= 0))
    bad(where, "scene.seed must be a non-negative integer");
  sc.seed = seed.get<uint64_t>();
  const json& o = field(j, "options", where, "scene");
  if (!o.is_object()) bad(where, "scene.options must be an object");
  auto& p = sc.options;
  p.width = get_int(o, "width", where, "options", 64, 4096);
  p.height = get_int(o, "height", where, "options", 64, 4096);
  p.min_objects = get_int(o, "min_objects", where, "options", 1, 16);
  p.max_objects = get_int(o, "max_objects", where, "options", 1, 16);
  p.textures = get_bool(o, "textures", where, "options", false);
  p.digits = get_bool(o, "digits", where, "options", false);
  p.validate(where);
  const json& arr = field(j, "objects", where, "scene");
  if (!arr.is_array()) bad(where, "scene.objects must be an array");
  if (arr.size() > size_t(kGrid * kGrid)) bad(where, "scene has more than 16 objects");
  std::set<int> cells;
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string path = "objects[" + std::to_string(i) + "]";
    const json& x = arr[i];
    if (!x.is_object()) bad(where, path + " must be an object");
    Object ob;
    ob.shape = get_name(x, "shape", where, path, kShapes);
    ob.color = get_name(x, "color", where, path, kColors);
    ob.size = get_name(x, "size", where, path, kSizes);
    ob.texture = get_name(x, "texture", where, path, kTextures);
    ob.digit = get_int(x, "digit", where, path, -1, 9);
    ob.row = get_int(x, "row", where, path, 0, kGrid - 1);
    ob.col = get_int(x, "col", where, path, 0, kGrid - 1);
    ob.cx = get_float(x, "cx", where, path);
    ob.cy = get_float(x, "cy", where, path);
    ob.radius = get_float(x, "radius", where, path);
    if (ob.radius < 0 || ob.radius > 1024) bad(where, path + ".radius is out of range");
    if (p.digits != (ob.digit >= 0)) bad(where, path + ".digit must be 0..9 when options.digits is set, else -1");
    if (!p.textures && ob.texture != "solid") bad(where, path + ".texture must be \"solid\" when options.textures is off");
    if (!cells.insert(ob.row * kGrid + ob.col).second)
      bad(where, path + " is in the same cell (" + std::to_string(ob.row) + ", " + std::to_string(ob.col) + ") as another object");
    sc.objects.push_back(ob);
  }
  sc.objects = sorted_objects(sc);
  return sc;
}

}  // namespace pvm::scenes
