// The scenes world: generator, renderer, description grammar, grader, QA items, JSON.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <set>

#include "engine/base/error.h"
#include "engine/base/hash.h"
#include "engine/base/scenes.h"

using namespace pvm;
using namespace pvm::scenes;

namespace {

SceneOptions opts(int lo, int hi, bool textures = false, bool digits = false) {
  SceneOptions o;
  o.min_objects = lo, o.max_objects = hi, o.textures = textures, o.digits = digits;
  return o;
}

uint64_t fnv1a(const std::vector<uint8_t>& v) { return pvm::fnv1a(v.data(), v.size()); }

// Sentences of a description ("." terminated, leading space trimmed).
std::vector<std::string> sentences(const std::string& d) {
  std::vector<std::string> out;
  size_t p = 0;
  while (p < d.size()) {
    size_t e = d.find('.', p);
    if (e == std::string::npos) e = d.size() - 1;
    std::string s = d.substr(p, e - p + 1);
    if (!s.empty() && s[0] == ' ') s.erase(0, 1);
    out.push_back(s);
    p = e + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

const std::vector<std::string> kRowWords{"top", "second", "third", "bottom"};
const std::vector<std::string> kColWords{"first", "second", "third", "fourth"};

}  // namespace

TEST(ScenesGenerate, DeterministicBySeed) {
  for (auto o : {opts(4, 16), opts(1, 16, true, true)}) {
    auto a = generate(1234, o), b = generate(1234, o), c = generate(1235, o);
    EXPECT_EQ(to_json(a).dump(), to_json(b).dump());
    EXPECT_NE(to_json(a).dump(), to_json(c).dump());
    auto ia = render(a), ib = render(b), ic = render(c);
    EXPECT_EQ(ia.rgb, ib.rgb);
    EXPECT_NE(ia.rgb, ic.rgb);
    EXPECT_EQ(describe(a), describe(b));
  }
  // Golden values: all geometry is integer and the PRNG is our own, so these must hold on every
  // platform and compiler. A change here means every generated data set changes.
  auto g = generate(1);
  EXPECT_EQ(g.objects.size(), 10u);
  EXPECT_EQ(fnv1a(render(g).rgb), 825707517074638649ULL) << "update only when the renderer is changed on purpose";
  EXPECT_EQ(sentences(describe(g)).at(1), "Object 1 is in the top row, first column, a small red star, left of the small red triangle.");
  EXPECT_EQ(g.objects[0].cx, 40.5f);
  EXPECT_EQ(g.objects[0].cy, 41.875f);
}

TEST(ScenesGenerate, TexturesAndDigitsKeepTheLayout) {
  // Every random draw happens whatever the options, so the same seed gives the same cells,
  // shapes, colours and sizes with the extras on.
  for (uint64_t s = 0; s < 50; ++s) {
    auto a = generate(s), b = generate(s, opts(4, 16, true, true));
    ASSERT_EQ(a.objects.size(), b.objects.size());
    for (size_t i = 0; i < a.objects.size(); ++i) {
      EXPECT_EQ(a.objects[i].row * 4 + a.objects[i].col, b.objects[i].row * 4 + b.objects[i].col);
      EXPECT_EQ(a.objects[i].shape, b.objects[i].shape);
      EXPECT_EQ(a.objects[i].color, b.objects[i].color);
      EXPECT_EQ(a.objects[i].texture, "solid");
      EXPECT_GE(b.objects[i].digit, 0);
      EXPECT_LE(b.objects[i].digit, 9);
    }
  }
}

TEST(ScenesGenerate, CountsCellsAndBoundsRespectOptions) {
  std::map<size_t, int> seen_counts;
  std::set<std::string> shapes, colors, sizes;
  for (auto o : {opts(4, 16), opts(1, 3), opts(16, 16), opts(7, 7, true, true)}) {
    o.width = o.min_objects == 1 ? 320 : 256;  // a non-default size too
    for (uint64_t s = 0; s < 200; ++s) {
      auto sc = generate(s * 7919 + 3, o);
      ASSERT_GE((int)sc.objects.size(), o.min_objects);
      ASSERT_LE((int)sc.objects.size(), o.max_objects);
      if (o.min_objects == 4) ++seen_counts[sc.objects.size()];
      std::set<int> cells;
      int prev = -1;
      for (auto& ob : sc.objects) {
        const int cell = ob.row * 4 + ob.col;
        EXPECT_TRUE(cells.insert(cell).second) << "two objects in one cell, seed " << sc.seed;
        EXPECT_GT(cell, prev) << "objects must be in reading order";
        prev = cell;
        // The whole object stays inside its own cell (so none can hide another).
        const float cw = o.width / 4.f, ch = o.height / 4.f;
        EXPECT_GE(ob.cx - ob.radius, ob.col * cw);
        EXPECT_LE(ob.cx + ob.radius, (ob.col + 1) * cw);
        EXPECT_GE(ob.cy - ob.radius, ob.row * ch);
        EXPECT_LE(ob.cy + ob.radius, (ob.row + 1) * ch);
        shapes.insert(ob.shape), colors.insert(ob.color), sizes.insert(ob.size);
      }
    }
  }
  EXPECT_EQ(seen_counts.size(), 13u) << "every count 4..16 should occur in 200 scenes";
  EXPECT_EQ(shapes.size(), 6u);
  EXPECT_EQ(colors.size(), 8u);
  EXPECT_EQ(sizes.size(), 2u);
  EXPECT_THROW(generate(1, opts(0, 4)), Error);
  EXPECT_THROW(generate(1, opts(5, 4)), Error);
  EXPECT_THROW(generate(1, opts(4, 17)), Error);
  auto tiny = opts(4, 16);
  tiny.width = 32;
  EXPECT_THROW(generate(1, tiny), Error);
}

TEST(ScenesRender, EveryObjectVisibleInItsOwnCell) {
  const auto bg = background_rgb();
  for (auto o : {opts(4, 16), opts(4, 16, true, true)}) {
    for (uint64_t s = 0; s < 40; ++s) {
      auto sc = generate(s, o);
      auto img = render(sc);
      ASSERT_EQ(img.rgb.size(), size_t(256 * 256 * 3));
      std::map<int, const Object*> at;
      for (auto& ob : sc.objects) at[ob.row * 4 + ob.col] = &ob;
      for (int cell = 0; cell < 16; ++cell) {
        const int r = cell / 4, c = cell % 4;
        int own = 0, foreign = 0;
        auto it = at.find(cell);
        for (int y = r * 64; y < r * 64 + 64; ++y)
          for (int x = c * 64; x < c * 64 + 64; ++x) {
            const uint8_t* p = &img.rgb[(size_t(y) * 256 + x) * 3];
            const bool is_bg = p[0] == bg[0] && p[1] == bg[1] && p[2] == bg[2];
            if (it == at.end()) {
              foreign += !is_bg;
              continue;
            }
            // The object's own colour, or its half-bright shade (stripes and dots).
            const auto want = color_rgb(it->second->color);
            int d = std::abs(p[0] - want[0]) + std::abs(p[1] - want[1]) + std::abs(p[2] - want[2]);
            int ds = std::abs(p[0] - want[0] / 2) + std::abs(p[1] - want[1] / 2) + std::abs(p[2] - want[2] / 2);
            own += d <= 24 || (it->second->texture != "solid" && ds <= 24);
            // Anything not background must lie within the object's own bounding circle.
            const float dx = x + 0.5f - it->second->cx, dy = y + 0.5f - it->second->cy;
            if (!is_bg && std::sqrt(dx * dx + dy * dy) > it->second->radius * 1.42f + 1.5f) ++foreign;
          }
        EXPECT_EQ(foreign, 0) << "seed " << s << " cell " << cell;
        if (it != at.end()) {
          // The least ink is a small star (1.3 r^2 = 340 px at r = 16, thin points antialiased), minus a digit.
          EXPECT_GE(own, 120) << "seed " << s << " cell " << cell << " " << it->second->size << " " << it->second->color
                              << " " << it->second->texture << " " << it->second->shape;
        }
      }
    }
  }
}

TEST(ScenesRender, ShapesDifferAndAreAntialiased) {
  // Same cell, colour and size: each shape has its own silhouette, and edges have blended pixels.
  std::set<std::vector<uint8_t>> silhouettes;
  for (auto& shape : shape_names()) {
    Scene sc;
    sc.options = opts(1, 1);
    Object ob;
    ob.shape = shape, ob.color = "white", ob.size = "large", ob.texture = "solid";
    ob.row = 1, ob.col = 1, ob.cx = 96, ob.cy = 96, ob.radius = 25.5f;
    sc.objects.push_back(ob);
    auto img = render(sc);
    silhouettes.insert(img.rgb);
    int partial = 0;
    for (size_t i = 0; i < img.rgb.size(); i += 3) partial += img.rgb[i] > 40 && img.rgb[i] < 245;
    EXPECT_GT(partial, 20) << shape;
  }
  EXPECT_EQ(silhouettes.size(), shape_names().size());
}

TEST(ScenesDescribe, ParsesBackToTheGroundTruthExactly) {
  int checked = 0;
  for (auto o : {opts(4, 16), opts(1, 16, true, false), opts(1, 16, false, true), opts(4, 16, true, true)}) {
    for (uint64_t s = 0; s < 150; ++s) {
      auto sc = generate(s * 31 + 11, o);
      auto d = describe(sc);
      auto back = parse_description(d, o);
      ASSERT_TRUE(back.has_value()) << d;
      ASSERT_EQ(back->objects.size(), sc.objects.size());
      for (size_t i = 0; i < sc.objects.size(); ++i) {
        const auto &a = sc.objects[i], &b = back->objects[i];
        EXPECT_EQ(std::tie(a.row, a.col, a.shape, a.color, a.size, a.texture, a.digit),
                  std::tie(b.row, b.col, b.shape, b.color, b.size, b.texture, b.digit));
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 600);
  // Strictness: any change that is not a valid description is refused.
  auto sc = generate(5);
  auto d = describe(sc);
  EXPECT_FALSE(parse_description(d, opts(4, 16, true, false)));  // textures expected but absent
  auto ss = sentences(d);
  auto wrong_count = ss;
  wrong_count[0] = "The image shows 99 objects on a dark gray background, in a grid of 4 rows and 4 columns.";
  EXPECT_FALSE(parse_description(join(wrong_count)));
  auto dropped = ss;
  dropped.pop_back();
  EXPECT_FALSE(parse_description(join(dropped)));
  auto bad_rel = d;
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{{"left of", "above"}, {"right of", "below"}}) {
    auto p = bad_rel.find(from);
    if (p != std::string::npos) {
      bad_rel.replace(p, from.size(), to);
      break;
    }
  }
  ASSERT_NE(bad_rel, d);
  EXPECT_FALSE(parse_description(bad_rel));
  EXPECT_FALSE(parse_description(""));
  EXPECT_FALSE(parse_description("garbage . , 12 row column"));
}

TEST(ScenesDescribe, GrammarAndLength) {
  auto sc = generate(3, opts(4, 4));
  auto d = describe(sc);
  // Names every attribute and the cell in words, plus a neighbour relation.
  auto ss = sentences(d);
  ASSERT_EQ(ss.size(), 5u);
  std::regex obj_re(
      "Object [1-4] is in the (top|second|third|bottom) row, (first|second|third|fourth) column, a (small|large) "
      "(red|orange|yellow|green|cyan|blue|purple|white) (circle|square|triangle|diamond|star|cross), "
      "(left of|right of|above|below) the (small|large) [a-z]+ [a-z]+\\.");
  for (size_t i = 1; i < ss.size(); ++i) EXPECT_TRUE(std::regex_match(ss[i], obj_re)) << ss[i];
  // Length in words (a word of this closed vocabulary is about one BPE token; '.' and ',' count).
  size_t lo = 1 << 30, hi = 0;
  for (uint64_t s = 0; s < 100; ++s) {
    lo = std::min(lo, words(describe(generate(s, opts(4, 4)))).size());
    hi = std::max(hi, words(describe(generate(s, opts(16, 16, true, true)))).size());
  }
  EXPECT_GE(lo, 100u);
  EXPECT_LE(hi, 600u);
}

TEST(ScenesGrade, PerfectCorruptedExtraDroppedGarbage) {
  auto sc = generate(77, opts(6, 10));
  const size_t n = sc.objects.size();
  auto d = describe(sc);
  auto g = grade(sc, d);
  EXPECT_DOUBLE_EQ(g.accuracy, 1.0);
  EXPECT_EQ(g.hallucinated, 0);
  EXPECT_EQ(g.missing, 0);
  EXPECT_TRUE(g.count_ok);
  for (auto& o : g.objects) {
    EXPECT_TRUE(o.matched && o.relation_ok);
    EXPECT_EQ(o.attributes_correct, 3);
  }

  // Colour of the 3rd object wrong: exactly that attribute at position 3.
  auto ss = sentences(d);
  auto corrupt = ss;
  const std::string& c3 = sc.objects[2].color;
  const std::string other = c3 == "red" ? "blue" : "red";
  auto p = corrupt[3].find(" " + c3 + " ");
  ASSERT_NE(p, std::string::npos);
  corrupt[3].replace(p + 1, c3.size(), other);
  g = grade(sc, join(corrupt));
  for (auto& o : g.objects) {
    EXPECT_TRUE(o.matched);
    EXPECT_EQ(o.color_ok, o.position != 3) << o.position;
    EXPECT_TRUE(o.shape_ok && o.size_ok);
    EXPECT_EQ(o.attributes_correct, o.position == 3 ? 2 : 3);
  }
  EXPECT_DOUBLE_EQ(g.accuracy, (3.0 * n - 1) / (3.0 * n));
  EXPECT_EQ(g.hallucinated, 0);

  // An extra sentence at an empty cell: hallucinated 1, nothing else changes.
  std::set<int> used;
  for (auto& o : sc.objects) used.insert(o.row * 4 + o.col);
  int empty = 0;
  while (used.count(empty)) ++empty;
  auto extra = ss;
  extra.push_back("Object 99 is in the " + kRowWords[empty / 4] + " row, " + kColWords[empty % 4] + " column, a large red star.");
  g = grade(sc, join(extra));
  EXPECT_EQ(g.hallucinated, 1);
  EXPECT_EQ(g.missing, 0);
  EXPECT_DOUBLE_EQ(g.accuracy, 1.0);
  // A repeated sentence is a hallucination too (the first one counts).
  auto dup = ss;
  dup.push_back(ss[2]);
  EXPECT_EQ(grade(sc, join(dup)).hallucinated, 1);

  // A dropped sentence: missing 1, that position unmatched and scored 0.
  auto drop = ss;
  drop.erase(drop.begin() + 4);  // the 4th object
  g = grade(sc, join(drop));
  EXPECT_EQ(g.missing, 1);
  EXPECT_EQ(g.hallucinated, 0);
  EXPECT_FALSE(g.objects[3].matched);
  EXPECT_EQ(g.objects[3].attributes_correct, 0);
  EXPECT_DOUBLE_EQ(g.accuracy, (3.0 * n - 3) / (3.0 * n));

  // Garbage: zero, no crash.
  for (std::string junk : {std::string(""), std::string("asdf qwer. , ..."), std::string("\xff\xfe\x00 row column", 15),
                           std::string(5000, '.'), std::string("in the top row, first column")}) {
    g = grade(sc, junk);
    EXPECT_EQ(g.objects.size(), n);
    EXPECT_LE(g.accuracy, 1.0 / (3 * n) + 1e-12);
  }
  g = grade(sc, "nothing here");
  EXPECT_EQ(g.accuracy, 0.0);
  EXPECT_EQ(g.missing, (int)n);
  auto j = g.to_json();
  EXPECT_EQ(j["objects"].size(), n);
  EXPECT_EQ(j["missing"], (int)n);
}

TEST(ScenesGrade, TexturesAndDigitsAreGraded) {
  auto o = opts(5, 5, true, true);
  auto sc = generate(9, o);
  auto d = describe(sc);
  auto g = grade(sc, d);
  EXPECT_DOUBLE_EQ(g.accuracy, 1.0);
  EXPECT_EQ(g.objects[0].attributes_total, 5);
  // Wrong digit for the first object.
  auto ss = sentences(d);
  const std::string want = "digit " + std::to_string(sc.objects[0].digit);
  auto p = ss[1].find(want);
  ASSERT_NE(p, std::string::npos);
  ss[1].replace(p, want.size(), "digit " + std::to_string((sc.objects[0].digit + 1) % 10));
  g = grade(sc, join(ss));
  EXPECT_FALSE(g.objects[0].digit_ok);
  EXPECT_TRUE(g.objects[0].texture_ok);
  EXPECT_EQ(g.objects[0].attributes_correct, 4);
  EXPECT_DOUBLE_EQ(g.accuracy, 24.0 / 25.0);
}

TEST(ScenesQA, AnswersAreConsistentWithTheScene) {
  std::map<std::string, int> kinds;
  std::map<std::string, int> yesno;
  std::regex count_color("How many ([a-z]+) objects are there\\?"), count_shape("How many ([a-z]+)s are there\\?"),
      color_at("What color is the object in the ([a-z]+) row, ([a-z]+) column\\?"),
      rel("Is the ([a-z]+) ([a-z]+) (left of|right of|above|below) the ([a-z]+) ([a-z]+)\\?"),
      kth("What ([a-z]+) is the ([a-z]+) object in reading order\\?"), kdigit("What digit is on the ([a-z]+) object in reading order\\?");
  const std::vector<std::string> ord{"first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
                                     "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth"};
  for (uint64_t s = 0; s < 150; ++s) {
    auto o = s % 2 ? opts(4, 16, true, true) : opts(4, 16);
    auto sc = generate(s, o);
    auto qs = questions(sc, s + 1000, 6);
    EXPECT_EQ(qs.size(), 6u);
    EXPECT_EQ(to_json(sc).dump(), to_json(generate(s, o)).dump());
    auto again = questions(sc, s + 1000, 6);
    for (size_t i = 0; i < qs.size(); ++i) EXPECT_EQ(qs[i].question, again[i].question);
    for (auto& q : qs) {
      ++kinds[q.kind];
      std::smatch m;
      std::string want;
      if (std::regex_match(q.question, m, count_color)) {
        want = std::to_string(std::count_if(sc.objects.begin(), sc.objects.end(), [&](auto& x) { return x.color == m[1]; }));
      } else if (q.question == "How many objects are there?") {
        want = std::to_string(sc.objects.size());
      } else if (std::regex_match(q.question, m, count_shape)) {
        std::string shape = m[1];
        if (shape == "crosse") shape = "cross";
        want = std::to_string(std::count_if(sc.objects.begin(), sc.objects.end(), [&](auto& x) { return x.shape == shape; }));
      } else if (std::regex_match(q.question, m, color_at)) {
        int r = int(std::find(kRowWords.begin(), kRowWords.end(), m[1]) - kRowWords.begin());
        int c = int(std::find(kColWords.begin(), kColWords.end(), m[2]) - kColWords.begin());
        for (auto& x : sc.objects) if (x.row == r && x.col == c) want = x.color;
      } else if (std::regex_match(q.question, m, rel)) {
        const Object *a = nullptr, *b = nullptr;
        int na = 0, nb = 0;
        for (auto& x : sc.objects) {
          if (x.color == m[1] && x.shape == m[2]) a = &x, ++na;
          if (x.color == m[4] && x.shape == m[5]) b = &x, ++nb;
        }
        ASSERT_TRUE(na == 1 && nb == 1) << q.question << " must name unique objects";
        bool yes = m[3] == "left of" ? a->col < b->col : m[3] == "right of" ? a->col > b->col
                 : m[3] == "above"   ? a->row < b->row : a->row > b->row;
        want = yes ? "yes" : "no";
        ++yesno[want];
      } else if (std::regex_match(q.question, m, kdigit)) {
        size_t k = std::find(ord.begin(), ord.end(), m[1]) - ord.begin();
        ASSERT_LT(k, sc.objects.size());
        want = std::to_string(sc.objects[k].digit);
      } else if (std::regex_match(q.question, m, kth)) {
        size_t k = std::find(ord.begin(), ord.end(), m[2]) - ord.begin();
        ASSERT_LT(k, sc.objects.size());
        auto& x = sc.objects[k];
        want = m[1] == "shape" ? x.shape : m[1] == "color" ? x.color : m[1] == "size" ? x.size : x.texture;
      } else {
        ADD_FAILURE() << "unknown question form: " << q.question;
      }
      EXPECT_EQ(q.answer, want) << q.question;
      // The SFT completion and the answer extraction agree.
      EXPECT_TRUE(answer_correct(qa_completion(q), q.answer));
      EXPECT_NE(qa_prompt(q).find(q.question), std::string::npos);
    }
  }
  for (auto k : {"count", "color_at", "relation", "kth_attribute"}) EXPECT_GT(kinds[k], 100) << k;
  EXPECT_GT(yesno["yes"], 40);
  EXPECT_GT(yesno["no"], 40);
}

TEST(ScenesQA, AnswerExtraction) {
  EXPECT_EQ(extract_answer("<think>x</think><answer> Red. </answer>"), "red");
  EXPECT_EQ(extract_answer("<think>x</think> 3"), "3");
  EXPECT_EQ(extract_answer("Yes"), "yes");
  EXPECT_EQ(extract_answer("<answer>blue"), "blue");
  EXPECT_TRUE(answer_correct("<answer>4</answer>", "4"));
  EXPECT_FALSE(answer_correct("<answer></answer>", ""));
  EXPECT_FALSE(answer_correct("<answer>red or blue</answer>", "red"));
  EXPECT_FALSE(answer_correct("<answer>14</answer>", "4"));
}

TEST(ScenesJson, RoundTripAndErrors) {
  auto sc = generate(21, opts(4, 16, true, true));
  auto j = to_json(sc);
  auto back = from_json(nlohmann::json::parse(j.dump()), "x.jsonl:1");
  EXPECT_EQ(to_json(back).dump(), j.dump());
  EXPECT_EQ(render(back).rgb, render(sc).rgb);
  EXPECT_EQ(describe(back), describe(sc));

  auto err = [&](nlohmann::json bad) -> std::string {
    try {
      from_json(bad, "x.jsonl:7");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(err(nlohmann::json::array()).find("x.jsonl:7"), std::string::npos);
  auto m = j;
  m.erase("objects");
  EXPECT_NE(err(m).find("objects"), std::string::npos);
  m = j;
  m["objects"][0]["color"] = "magenta";
  EXPECT_NE(err(m).find("magenta"), std::string::npos);
  m = j;
  m["objects"][1]["row"] = m["objects"][0]["row"];
  m["objects"][1]["col"] = m["objects"][0]["col"];
  EXPECT_NE(err(m).find("same cell"), std::string::npos);
  m = j;
  m["objects"][0]["row"] = 4;
  EXPECT_NE(err(m).find("row"), std::string::npos);
  m = j;
  m["objects"][0]["digit"] = 10;
  EXPECT_NE(err(m).find("digit"), std::string::npos);
  m = j;
  m["objects"][0]["cx"] = "12";
  EXPECT_NE(err(m).find("cx"), std::string::npos);
  m = j;
  m["seed"] = -1;
  EXPECT_NE(err(m).find("seed"), std::string::npos);
  m = j;
  m["options"]["width"] = 10;
  EXPECT_NE(err(m).find("width"), std::string::npos);
  m = j;
  m["options"]["textures"] = false;
  EXPECT_NE(err(m).find("texture"), std::string::npos);
}

TEST(ScenesSeeds, SplitsAreDisjointAndStable) {
  std::set<uint64_t> train, held;
  for (uint64_t i = 0; i < 20000; ++i) train.insert(scene_seed(7, 0, i)), held.insert(scene_seed(7, 1, i));
  EXPECT_EQ(train.size(), 20000u);
  EXPECT_EQ(held.size(), 20000u);
  for (auto s : held) EXPECT_EQ(train.count(s), 0u);
  EXPECT_EQ(scene_seed(7, 1, 5), scene_seed(7, 1, 5));
  EXPECT_NE(scene_seed(7, 0, 5), scene_seed(8, 0, 5));
}
