#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "engine/base/error.h"
#include "engine/base/rewards.h"
#include "engine/base/scenes.h"

using namespace pvm::rewards;

namespace {
std::string wrap(const std::string& think, const std::string& answer) {
  return "<think>" + think + "</think><answer>" + answer + "</answer>";
}
}  // namespace

// ---------------------------------------------------------------- format

TEST(RewardsFormat, AcceptsTheExactStructureWithWhitespace) {
  EXPECT_TRUE(strict_format("<think>reasoning</think><answer>B</answer>"));
  EXPECT_TRUE(strict_format("  \n<think>\nstep 1\nstep 2\n</think>\n\n<answer> 42 </answer>\n"));
  EXPECT_TRUE(strict_format("<think></think><answer></answer>"));  // the official regex allows empty blocks
  EXPECT_TRUE(strict_format("<think>a < b and c > d</think>\t<answer>x</answer>"));  // plain < > are text
}

TEST(RewardsFormat, RejectsMissingOrMisplacedTags) {
  EXPECT_FALSE(strict_format(""));
  EXPECT_FALSE(strict_format("B"));
  EXPECT_FALSE(strict_format("<think>r<answer>B</answer>"));               // missing </think>
  EXPECT_FALSE(strict_format("<think>r</think>"));                         // no answer
  EXPECT_FALSE(strict_format("<think>r</think><answer>B"));                // missing </answer>
  EXPECT_FALSE(strict_format("<answer>B</answer><think>r</think>"));       // wrong order
  EXPECT_FALSE(strict_format("<answer>B</answer>"));                       // no think block
  EXPECT_FALSE(strict_format("<think>r</think> so <answer>B</answer>"));   // text between blocks
  EXPECT_FALSE(strict_format("Sure! <think>r</think><answer>B</answer>"));  // text before
  EXPECT_FALSE(strict_format("<think>r</think><answer>B</answer> done"));  // text after </answer>
  EXPECT_FALSE(strict_format("<Think>r</Think><answer>B</answer>"));       // tags are case-sensitive
}

TEST(RewardsFormat, RejectsNestedAndRepeatedTags) {
  EXPECT_FALSE(strict_format("<think>r</think><answer>A</answer><answer>B</answer>"));  // two answers
  EXPECT_FALSE(strict_format("<think>r</think><think>s</think><answer>B</answer>"));    // two thinks
  EXPECT_FALSE(strict_format("<think>a<think>b</think></think><answer>B</answer>"));    // nested think
  EXPECT_FALSE(strict_format("<think>r</think><answer><answer>B</answer></answer>"));   // nested answer
  EXPECT_FALSE(strict_format("<think>r <answer>A</answer></think><answer>B</answer>"));  // answer inside think
  EXPECT_FALSE(strict_format("<think>r</think><answer>B</think></answer>"));            // stray close tag
}

TEST(RewardsFormat, FirstAnswerIsNonGreedy) {
  EXPECT_EQ(first_answer("<answer>A</answer><answer>B</answer>").value(), "A");
  EXPECT_EQ(first_answer("x <answer> 7 </answer> y").value(), " 7 ");
  EXPECT_FALSE(first_answer("<answer>A").has_value());
  EXPECT_FALSE(first_answer("A</answer>").has_value());
  EXPECT_FALSE(first_answer("no tags").has_value());
  EXPECT_EQ(answer_text("<think>t</think> 12 "), "12");  // for exact/choice without answer tags
  EXPECT_EQ(answer_text("<think>t</think><answer> C </answer>"), "C");
  EXPECT_EQ(answer_text("  D  "), "D");
}

// ---------------------------------------------------------------- numbers

TEST(RewardsNumber, ParsesStrictForms) {
  auto v = [](const char* s) { return parse_number(s).value().value; };
  EXPECT_DOUBLE_EQ(v("1000"), 1000);
  EXPECT_DOUBLE_EQ(v("1,000"), 1000);
  EXPECT_DOUBLE_EQ(v("1,234,567.5"), 1234567.5);
  EXPECT_DOUBLE_EQ(v("1000.0"), 1000);
  EXPECT_DOUBLE_EQ(v("-3"), -3);
  EXPECT_DOUBLE_EQ(v("+3"), 3);
  EXPECT_DOUBLE_EQ(v(".5"), 0.5);
  EXPECT_DOUBLE_EQ(v("5."), 5);
  EXPECT_DOUBLE_EQ(v("3/4"), 0.75);
  EXPECT_DOUBLE_EQ(v("-3 / 4"), -0.75);
  EXPECT_DOUBLE_EQ(v("\\frac{3}{4}"), 0.75);
  EXPECT_DOUBLE_EQ(v("-\\frac{1}{2}"), -0.5);
  EXPECT_DOUBLE_EQ(v("\\frac{-1}{8}"), -0.125);
  EXPECT_DOUBLE_EQ(v("\\frac {2.5}{5}"), 0.5);
  EXPECT_TRUE(parse_number("50%").value().percent);
  EXPECT_DOUBLE_EQ(v("50 %"), 50);
}

TEST(RewardsNumber, RejectsNonNumbers) {
  for (const char* s : {"", "-", ".", "nan", "inf", "-inf", "0x10", "1e3", "3 or 4", "3, 4", "1,00", "1000,000",
                        "12a", "a12", "3/0", "3/", "/4", "3/-4", "1/2/3", "\\frac{3}", "\\frac{3}{0}",
                        "\\frac{3}{4}5", "--3", "3 4", "1 1/2", "%", "3%%"}) {
    EXPECT_FALSE(parse_number(s).has_value()) << "'" << s << "'";
  }
}

TEST(RewardsGrade, NumericEquivalences) {
  EXPECT_TRUE(answers_equal("1,000", "1000"));
  EXPECT_TRUE(answers_equal("1000.0", "1000"));
  EXPECT_TRUE(answers_equal("0.75", "3/4"));
  EXPECT_TRUE(answers_equal("3/4", "0.75"));
  EXPECT_TRUE(answers_equal("\\frac{3}{4}", "0.75"));
  EXPECT_TRUE(answers_equal("\\dfrac{3}{4}", "\\frac{3}{4}"));
  EXPECT_TRUE(answers_equal("$\\tfrac{6}{8}$", "3/4"));
  EXPECT_TRUE(answers_equal("0.5", ".5"));
  EXPECT_TRUE(answers_equal("-3", "\xE2\x88\x92" "3"));  // U+2212 minus
  EXPECT_TRUE(answers_equal("\\boxed{12}", "12"));
  EXPECT_TRUE(answers_equal("The answer is $\\boxed{12}$.", "12"));
  EXPECT_TRUE(answers_equal("x = 5", "5"));
  EXPECT_TRUE(answers_equal("30^\\circ", "30"));
  EXPECT_TRUE(answers_equal("30°", "30^{\\circ}"));
  EXPECT_TRUE(answers_equal("\\( 7 \\)", "7"));
  EXPECT_TRUE(answers_equal("12", "<answer>12</answer>"));  // solution given with tags
  EXPECT_TRUE(answers_equal("12", "\\boxed{12}"));
}

TEST(RewardsGrade, NumericInequalities) {
  EXPECT_FALSE(answers_equal("0.333", "1/3"));  // no rounding tolerance beyond 1e-9
  EXPECT_FALSE(answers_equal("13", "3"));       // substring is not a match
  EXPECT_FALSE(answers_equal("3", "-3"));
  EXPECT_FALSE(answers_equal("4/3", "3/4"));
  EXPECT_FALSE(answers_equal("100", "1,000"));
  EXPECT_FALSE(answers_equal("5 cm", "5"));  // units are not stripped (conservative)
  EXPECT_FALSE(answers_equal("x = 5, y = 6", "5"));
  EXPECT_FALSE(answers_equal("five", "5"));
}

TEST(RewardsGrade, PercentagesOnlyWhenUnambiguous) {
  EXPECT_TRUE(answers_equal("50%", "50%"));
  EXPECT_TRUE(answers_equal("50", "50%"));   // same number; % is a unit
  EXPECT_TRUE(answers_equal("50\\%", "50"));
  EXPECT_FALSE(answers_equal("0.5", "50%"));  // never converted
  EXPECT_FALSE(answers_equal("50%", "0.5"));
}

TEST(RewardsGrade, ChoiceLetters) {
  for (const char* a : {"B", "(B)", "[B]", "B.", "B)", "B:", "b", "(b)", "Answer: B", "answer is B",
                        "The answer is (B).", "Option B", "\\text{B}", "$\\boxed{B}$", "**B**",
                        "\\boxed{\\text{(B)}}", "B. 45 degrees", "(B) the triangle is isosceles"}) {
    EXPECT_TRUE(answers_equal(a, "B")) << a;
    EXPECT_TRUE(answers_equal(a, "(B)")) << a;
  }
  for (const char* a : {"A", "C", "(C)", "BB", "Bb", "B2", "B,", "B C"}) EXPECT_FALSE(answers_equal(a, "B")) << a;
  EXPECT_EQ(choice_letter("  (d)  ").value(), 'D');
  EXPECT_FALSE(choice_letter("b. the second").has_value());  // lower-case letter with text: a sentence
}

TEST(RewardsGrade, ShortStringsAndLatex) {
  EXPECT_TRUE(answers_equal("Red", "red"));
  EXPECT_TRUE(answers_equal("  the circle. ", "circle"));
  EXPECT_TRUE(answers_equal("\"triangle\"", "Triangle"));
  EXPECT_TRUE(answers_equal("New York", "new york"));
  EXPECT_TRUE(answers_equal("2\\sqrt{3}", "2 \\sqrt{3}"));
  EXPECT_TRUE(answers_equal("\\left( 1, 2 \\right)", "(1,2)"));
  EXPECT_TRUE(answers_equal("\\text{yes}", "Yes"));
  EXPECT_TRUE(answers_equal("x\\,y", "xy"));
  EXPECT_FALSE(answers_equal("blue", "red"));
  EXPECT_FALSE(answers_equal("red or blue", "red"));
  EXPECT_FALSE(answers_equal("redder", "red"));
  EXPECT_FALSE(answers_equal("(1,3)", "(1,2)"));
  EXPECT_FALSE(answers_equal("\\leftarrow", "arrow"));  // \left is removed only as a whole command
}

// ---------------------------------------------------------------- the known hacks

TEST(RewardsHacks, EmptyAnswersNeverScore) {
  for (const char* a : {"", " ", "\n\t", "$$", "\\boxed{}", "\\text{}", "Answer:", "The answer is .", "**"}) {
    EXPECT_FALSE(answers_equal(a, "B")) << "'" << a << "'";
    EXPECT_FALSE(answers_equal(a, "0")) << "'" << a << "'";
    EXPECT_FALSE(answers_equal(a, "red")) << "'" << a << "'";
    EXPECT_FALSE(exact_equal(a, "x")) << "'" << a << "'";
  }
  EXPECT_FALSE(answers_equal("B", ""));  // an empty solution cannot be matched either
  EXPECT_FALSE(answers_equal("", ""));
}

TEST(RewardsHacks, SeveralOptionsNeverScore) {
  for (const char* a : {"A or B", "B or A", "A, B", "A,B", "B, C", "AB", "BA", "ABCD", "A/B", "A and B",
                        "(A) or (B)", "(B) (C)", "B. or C", "the answer is B or maybe C",
                        "the answer is A or maybe C", "B) no wait, C", "A B C D", "\\boxed{B} \\boxed{C}",
                        "[A-D]", "B|C"}) {
    EXPECT_FALSE(answers_equal(a, "B")) << a;
    EXPECT_FALSE(choice_letter(a).has_value()) << a;
    EXPECT_DOUBLE_EQ(score(Kind::Choice, wrap("t", a), "B").value, 0.0) << a;
  }
}

TEST(RewardsHacks, SeveralNumbersNeverScore) {
  for (const char* a : {"3 or 4", "4 or 3", "3, 4", "3 4", "3,4", "3 and 4", "3 (or 4)", "\\boxed{3} \\boxed{4}",
                        "\\boxed{3}, \\boxed{4}", "3-4", "3 +- 1", "3 or maybe 4", "x = 3 or x = 4", "[3, 4]"}) {
    EXPECT_FALSE(answers_equal(a, "3")) << a;
    EXPECT_FALSE(answers_equal(a, "4")) << a;
  }
  EXPECT_TRUE(answers_equal("\\boxed{3} so \\boxed{3}", "3"));  // repeating the same boxed value is fine
}

TEST(RewardsHacks, TagTricks) {
  // Two <answer> blocks: no format bonus; only the first answer is graded.
  auto r = score(Kind::ThinkAnswer, "<think>t</think><answer>C</answer><answer>B</answer>", "B");
  EXPECT_FALSE(r.format);
  EXPECT_FALSE(r.correct);
  EXPECT_DOUBLE_EQ(r.value, 0.0);
  // Nested answer tag inside the answer: the inner tag text makes the answer ungradable.
  r = score(Kind::ThinkAnswer, "<think>t</think><answer><answer>B</answer></answer>", "B");
  EXPECT_FALSE(r.format);
  EXPECT_FALSE(r.correct);
  // The answer in the think block does not count as the answer.
  r = score(Kind::ThinkAnswer, "<think>B</think><answer></answer>", "B");
  EXPECT_TRUE(r.format);
  EXPECT_FALSE(r.correct);
  EXPECT_DOUBLE_EQ(r.value, 0.1);
  // Unclosed answer: nothing graded.
  r = score(Kind::ThinkAnswer, "<think>t</think><answer>B", "B");
  EXPECT_DOUBLE_EQ(r.value, 0.0);
}

// ---------------------------------------------------------------- score()

TEST(RewardsScore, ThinkAnswerIsFormatPlusAccuracy) {
  auto r = score(Kind::ThinkAnswer, wrap("2+2=4", "4"), "4");
  EXPECT_TRUE(r.format);
  EXPECT_TRUE(r.correct);
  EXPECT_DOUBLE_EQ(r.value, 1.0);
  r = score(Kind::ThinkAnswer, wrap("2+2=5", "5"), "4");
  EXPECT_TRUE(r.format);
  EXPECT_FALSE(r.correct);
  EXPECT_DOUBLE_EQ(r.value, 0.1);
  // Correct answer, broken format (text after </answer>): accuracy only.
  r = score(Kind::ThinkAnswer, wrap("t", "4") + " Hope this helps!", "4");
  EXPECT_FALSE(r.format);
  EXPECT_TRUE(r.correct);
  EXPECT_DOUBLE_EQ(r.value, 0.9);
  // No answer block at all.
  r = score(Kind::ThinkAnswer, "The answer is 4.", "4");
  EXPECT_DOUBLE_EQ(r.value, 0.0);
  r = score(Kind::ThinkAnswer, wrap("t", "\\frac{1}{2}"), "0.5");
  EXPECT_DOUBLE_EQ(r.value, 1.0);
}

TEST(RewardsScore, ExactAndChoice) {
  EXPECT_DOUBLE_EQ(score(Kind::Exact, "  Paris. ", "paris").value, 1.0);
  EXPECT_DOUBLE_EQ(score(Kind::Exact, "<think>hm</think><answer>New   York</answer>", "new york").value, 1.0);
  EXPECT_DOUBLE_EQ(score(Kind::Exact, "0.5", "1/2").value, 0.0);  // no numeric equivalence in exact
  EXPECT_DOUBLE_EQ(score(Kind::Exact, "Paris, France", "Paris").value, 0.0);
  EXPECT_DOUBLE_EQ(score(Kind::Exact, "", "").value, 0.0);
  EXPECT_DOUBLE_EQ(score(Kind::Choice, "<think>t</think><answer>(C)</answer>", "C").value, 1.0);
  EXPECT_DOUBLE_EQ(score(Kind::Choice, "C", "(C)").value, 1.0);
  EXPECT_DOUBLE_EQ(score(Kind::Choice, "D", "C").value, 0.0);
  EXPECT_DOUBLE_EQ(score(Kind::Choice, "C", "42").value, 0.0);  // solution is no letter: never correct
  EXPECT_TRUE(score(Kind::Choice, wrap("t", "C"), "C").format);  // format is reported for every kind
}

TEST(RewardsScore, KindNames) {
  EXPECT_EQ(parse_kind("think_answer"), Kind::ThinkAnswer);
  EXPECT_EQ(parse_kind("exact"), Kind::Exact);
  EXPECT_EQ(parse_kind("choice"), Kind::Choice);
  EXPECT_STREQ(kind_name(Kind::Choice), "choice");
  EXPECT_THROW(parse_kind("accuracy"), pvm::Error);
  try {
    parse_kind("x");
  } catch (const pvm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'x'"), std::string::npos);
  }
}

TEST(RewardsScore, LongAndHostileInputIsSafe) {
  std::string big(200000, '{');
  EXPECT_FALSE(answers_equal(big, "3"));
  EXPECT_FALSE(answers_equal("\\boxed{" + big, "3"));
  std::string many;
  for (int i = 0; i < 5000; ++i) many += "<answer>";
  EXPECT_DOUBLE_EQ(score(Kind::ThinkAnswer, many, "3").value, 0.0);
  std::string nul("3\0", 2);
  EXPECT_FALSE(answers_equal(nul, "3"));
}

// ---------------------------------------------------------------- scene_description

namespace {
// A scene with at least 5 objects and a free cell (seeds are tried in order, deterministic).
pvm::scenes::Scene scene_with_free_cell() {
  for (uint64_t seed = 1;; ++seed) {
    auto s = pvm::scenes::generate(seed);
    if (s.objects.size() >= 5 && s.objects.size() < 16) return s;
  }
}
}  // namespace

TEST(RewardsSceneDescription, ScoresAttributesAgainstTheTruthAndChargesMissingAndInventedObjects) {
  namespace sc = pvm::scenes;
  EXPECT_EQ(parse_kind("scene_description"), Kind::SceneDescription);
  EXPECT_STREQ(kind_name(Kind::SceneDescription), "scene_description");
  const sc::Scene truth = scene_with_free_cell();
  const std::string desc = sc::describe(truth);
  const double n = double(truth.objects.size());

  Reward exact = score(Kind::SceneDescription, desc, desc);
  EXPECT_DOUBLE_EQ(exact.value, 1.0);
  EXPECT_TRUE(exact.correct);
  EXPECT_TRUE(exact.format);

  // One object left out: its attributes count as wrong.
  sc::Scene fewer = truth;
  fewer.objects.pop_back();
  Reward miss = score(Kind::SceneDescription, sc::describe(fewer), desc);
  EXPECT_NEAR(miss.value, (n - 1) / n, 1e-12);
  EXPECT_FALSE(miss.correct);

  // One invented object in a free cell: costs as much as a true object's attributes.
  sc::Scene more = truth;
  std::vector<bool> used(16, false);
  for (auto& o : truth.objects) used[size_t(o.row * 4 + o.col)] = true;
  int free_cell = 0;
  while (used[size_t(free_cell)]) ++free_cell;
  sc::Object extra = truth.objects.front();
  extra.row = free_cell / 4, extra.col = free_cell % 4;
  more.objects.push_back(extra);
  std::sort(more.objects.begin(), more.objects.end(),
            [](const sc::Object& a, const sc::Object& b) { return a.row * 4 + a.col < b.row * 4 + b.col; });
  Reward invented = score(Kind::SceneDescription, sc::describe(more), desc);
  EXPECT_NEAR(invented.value, n / (n + 1), 1e-12);
  EXPECT_FALSE(invented.correct);

  // One wrong colour: one attribute of 3n.
  sc::Scene recolored = truth;
  recolored.objects[0].color = recolored.objects[0].color == "red" ? "blue" : "red";
  EXPECT_NEAR(score(Kind::SceneDescription, sc::describe(recolored), desc).value, (3 * n - 1) / (3 * n), 1e-12);

  EXPECT_DOUBLE_EQ(score(Kind::SceneDescription, "a cat on a mat", desc).value, 0.0);
  EXPECT_DOUBLE_EQ(score(Kind::SceneDescription, "", desc).value, 0.0);
}

TEST(RewardsSceneDescription, ASolutionThatIsNotADescriptionIsADataError) {
  try {
    score(Kind::SceneDescription, "The image shows 1 objects", "42");
    FAIL() << "expected pvm::Error";
  } catch (const pvm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a scenes description: '42'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_kind("scene"), pvm::Error);
}
