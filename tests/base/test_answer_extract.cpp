// Rule-only answer extraction (engine/base/answer_extract.h): the tricky outputs of real models.
#include <gtest/gtest.h>

#include "engine/base/answer_extract.h"

namespace {

using pvm::answers::ChoiceKind;
using pvm::answers::ChoiceResult;
using pvm::answers::extract_choice;

const std::vector<std::string> kFour = {"a red cube", "a blue sphere", "a green cone", "a yellow cylinder"};

// "B", "refusal", "none", "ambiguous"
std::string got(const std::string& out, const std::vector<std::string>& opts = kFour) {
  ChoiceResult r = extract_choice(out, opts);
  if (r.kind == ChoiceKind::Letter) return std::string(1, r.letter);
  return pvm::answers::kind_name(r.kind);
}
std::string how(const std::string& out, const std::vector<std::string>& opts = kFour) {
  return extract_choice(out, opts).how;
}

TEST(AnswerExtractLetter, StandaloneForms) {
  EXPECT_EQ(got("B"), "B");
  EXPECT_EQ(got("B."), "B");
  EXPECT_EQ(got("(B)"), "B");
  EXPECT_EQ(got("B)"), "B");
  EXPECT_EQ(got("[C]"), "C");
  EXPECT_EQ(got("  D\n"), "D");
  EXPECT_EQ(got("b"), "B");      // the whole answer, lower case
  EXPECT_EQ(got("b)"), "B");     // list-marker form
  EXPECT_EQ(got("(c)"), "C");
  EXPECT_EQ(got("**B**"), "B");  // markdown
  EXPECT_EQ(got("`C`"), "C");
  EXPECT_EQ(how("B"), "letter");
}

TEST(AnswerExtractLetter, AnswerCues) {
  EXPECT_EQ(got("Answer: B"), "B");
  EXPECT_EQ(got("The answer is (C)."), "C");
  EXPECT_EQ(got("The correct answer is **D**."), "D");
  EXPECT_EQ(got("Looking at the colors, the cube is red. So the answer is A."), "A");
  EXPECT_EQ(got("The answer is A"), "A");
  EXPECT_EQ(got("Final answer: option C"), "C");
  EXPECT_EQ(got("I would choose B because the sphere is blue."), "B");
  EXPECT_EQ(got("The answer is b because the sphere is blue."), "B");
  EXPECT_EQ(got("The answer is A because the cube is red."), "A");  // "A because": still the letter
  EXPECT_EQ(got("B is the correct answer."), "B");
  EXPECT_EQ(got("Option (C) is correct."), "C");
  EXPECT_EQ(got("$\\boxed{D}$"), "D");
  EXPECT_EQ(how("The answer is (C)."), "letter");
  // A cue letter wins over letters discussed before it.
  EXPECT_EQ(got("A shows a cube, but B shows a sphere. Therefore, the answer is B."), "B");
  EXPECT_EQ(got("Option A is red, option C is green; the answer is C"), "C");
}

TEST(AnswerExtractLetter, ChineseAndFullWidth) {
  EXPECT_EQ(got("答案：B"), "B");
  EXPECT_EQ(got("答案是C。"), "C");
  EXPECT_EQ(got("选B"), "B");
  EXPECT_EQ(got("故选D"), "D");
  EXPECT_EQ(got("正确答案为 A"), "A");
  EXPECT_EQ(got("Ｂ"), "B");             // full-width letter
  EXPECT_EQ(got("（Ｃ）"), "C");         // full-width brackets
  EXPECT_EQ(got("答案：（Ａ）"), "A");
  EXPECT_EQ(got("【D】"), "D");
  EXPECT_EQ(got("我认为答案是B，因为球是蓝色的。"), "B");
}

TEST(AnswerExtractLetter, LetterInsideWordIsNotALetter) {
  // Option texts that hold no letter token; outputs with capitals only inside words.
  const std::vector<std::string> fruit = {"Apple", "Banana", "Cherry", "Date"};
  EXPECT_EQ(got("Apple", fruit), "A");  // via the option text, not the 'A' of Apple
  EXPECT_EQ(how("Apple", fruit), "option-text");
  EXPECT_EQ(got("Banana bread is tasty.", fruit), "B");
  EXPECT_EQ(how("Banana bread is tasty.", fruit), "option-text");
  EXPECT_EQ(got("It is an X-ray of the U.S. coast, e.g. Boston."), "none");
  EXPECT_EQ(got("I'm not sure whether it's Dutch."), "none");
}

TEST(AnswerExtractLetter, ArticleAndPronounAreNotLetters) {
  EXPECT_EQ(got("A cat sits on the mat."), "none");
  EXPECT_EQ(got("I think it is round."), "none");
  EXPECT_EQ(got("A dog runs. The answer is C."), "C");
  EXPECT_EQ(got("The answer is a cat."), "none");
  // But "A" confirmed by what follows is the letter.
  EXPECT_EQ(got("A is correct."), "A");
  EXPECT_EQ(got("A."), "A");
  EXPECT_EQ(got("A. a red cube"), "A");
}

TEST(AnswerExtractLetter, SeveralLettersAreAmbiguousNeverPicked) {
  EXPECT_EQ(got("A or B"), "ambiguous");
  EXPECT_EQ(got("The answer is A or B."), "ambiguous");
  EXPECT_EQ(got("The answer is B/C"), "ambiguous");
  EXPECT_EQ(got("答案是A或B"), "ambiguous");
  EXPECT_EQ(got("The answer is A. Actually, the answer is B."), "ambiguous");
  EXPECT_EQ(got("(A) is wrong and (C) might be right"), "ambiguous");
  EXPECT_EQ(got("B, C and D are all possible"), "ambiguous");
  EXPECT_EQ(how("A or B"), "ambiguous");
}

TEST(AnswerExtractLetter, MentionsAndOutOfRange) {
  EXPECT_EQ(got("Looking closely, B matches the picture."), "B");
  EXPECT_EQ(how("Looking closely, B matches the picture."), "letter-mention");
  // Only A..D exist: a cue naming E is no answer; a stray T is ignored.
  EXPECT_EQ(got("The answer is E."), "none");
  EXPECT_EQ(how("The answer is E."), "out-of-range");
  EXPECT_EQ(got("The T junction shows C"), "C");
  // Without option texts every letter A..Z counts.
  EXPECT_EQ(got("The answer is E.", {}), "E");
}

TEST(AnswerExtractLetter, OptionTextEchoed) {
  EXPECT_EQ(got("a green cone"), "C");
  EXPECT_EQ(got("The object is a blue sphere."), "B");
  EXPECT_EQ(how("The object is a blue sphere."), "option-text");
  EXPECT_EQ(got("B. a blue sphere"), "B");  // letter + echoed text
  // An opening letter alone on its line or with its own text is the answer; other letters in the
  // explanation then do not make it ambiguous. An opening letter followed by prose is not enough.
  EXPECT_EQ(got("B. a blue sphere\nBecause A is red, it is not A."), "B");
  EXPECT_EQ(got("B.\nThe sphere is blue, not A."), "B");
  EXPECT_EQ(got("B. Because the sphere is blue, not A."), "ambiguous");
  EXPECT_EQ(got("It could be a red cube or a blue sphere."), "ambiguous");
  // The longer option wins over one it contains.
  EXPECT_EQ(got("a black cat", {"cat", "black cat", "dog"}), "B");
  // Option texts that contain a standalone capital are not read as that letter.
  const std::vector<std::string> vit = {"Vitamin A", "Vitamin B", "Vitamin C", "Iron"};
  EXPECT_EQ(got("The answer is vitamin C.", vit), "C");
  EXPECT_EQ(how("The answer is vitamin C.", vit), "option-text");
  EXPECT_EQ(got("It is Vitamin A, clearly.", vit), "A");
  EXPECT_EQ(got("B", vit), "B");
  EXPECT_EQ(got("Plan B", {"Plan A", "Plan B"}), "B");
  EXPECT_EQ(got("Plan A", {"Plan B", "Plan A"}), "B");
  // Option text matching in Chinese (no spaces between words).
  EXPECT_EQ(got("图中是一只猫", {"狗", "猫", "鸟"}), "B");
}

TEST(AnswerExtractLetter, AnswerTagsAndThinking) {
  EXPECT_EQ(got("<think>A looks wrong, maybe C</think><answer>B</answer>"), "B");
  EXPECT_EQ(got("<think>Consider A and C.</think>\nThe answer is D."), "D");
  EXPECT_EQ(got("reasoning... <answer> (c) </answer>"), "C");
  EXPECT_EQ(got("<answer>A or B</answer>"), "ambiguous");
  EXPECT_EQ(pvm::answers::answer_scope("x <answer>C</answer> y"), "C");
}

TEST(AnswerExtractRefusal, Refusals) {
  EXPECT_EQ(got("I cannot determine the answer from this image."), "refusal");
  EXPECT_EQ(got("I'm sorry, but I can't help with that."), "refusal");
  EXPECT_EQ(got("The image does not provide enough information; it cannot be determined."), "refusal");
  EXPECT_EQ(got("None of the options match the picture."), "refusal");
  EXPECT_EQ(got("无法确定。"), "refusal");
  EXPECT_EQ(got("I can't tell whether it is A or B."), "refusal");
  EXPECT_EQ(how("无法确定。"), "refusal");
  // A stated answer wins over polite words.
  EXPECT_EQ(got("I'm sorry for the confusion: the answer is B."), "B");
  // When an option says it, it is an answer, not a refusal.
  const std::vector<std::string> cbd = {"Yes", "No", "Cannot be determined"};
  EXPECT_EQ(got("Cannot be determined", cbd), "C");
  const std::vector<std::string> nota = {"red", "blue", "None of the above"};
  EXPECT_EQ(got("None of the above.", nota), "C");
  EXPECT_TRUE(pvm::answers::is_refusal("I am unable to see the image."));
  EXPECT_FALSE(pvm::answers::is_refusal("The answer is B."));
}

TEST(AnswerExtractOpen, Numbers) {
  using pvm::answers::open_match;
  using pvm::answers::parse_number;
  EXPECT_TRUE(open_match("3", "3"));
  EXPECT_TRUE(open_match("There are 3 cats.", "3"));
  EXPECT_TRUE(open_match("three", "3"));
  EXPECT_TRUE(open_match("The answer is 0.5", "1/2"));
  EXPECT_TRUE(open_match("$\\frac{1}{2}$", "0.5"));
  EXPECT_TRUE(open_match("\\boxed{\\dfrac{3}{4}}", "0.75"));
  EXPECT_TRUE(open_match("1,000", "1000"));
  EXPECT_TRUE(open_match("50%", "50"));
  EXPECT_TRUE(open_match("The answer is 12.0.", "12"));
  EXPECT_FALSE(open_match("There are 3 cats and 4 dogs.", "3"));  // two numbers: never a pick
  EXPECT_FALSE(open_match("4", "3"));
  EXPECT_FALSE(open_match("31", "3"));
  EXPECT_EQ(*parse_number("-2.5e1"), -25.0);
  EXPECT_EQ(*parse_number("3/4"), 0.75);
  EXPECT_FALSE(parse_number("3/0").has_value());
  EXPECT_FALSE(parse_number("abc").has_value());
  EXPECT_FALSE(parse_number("1,00").has_value());
}

TEST(AnswerExtractOpen, Strings) {
  using pvm::answers::normalize_open;
  using pvm::answers::open_match;
  EXPECT_EQ(normalize_open("  The Red Cube! "), "red cube");
  EXPECT_EQ(normalize_open("\\text{blue}"), "blue");
  EXPECT_EQ(normalize_open("0.50"), "0.5");
  EXPECT_TRUE(open_match("Red cube.", "red cube"));
  EXPECT_TRUE(open_match("Answer: a red cube", "red cube"));
  EXPECT_TRUE(open_match("Yes, it is.", "yes"));
  EXPECT_FALSE(open_match("No, it is not.", "yes"));
  EXPECT_FALSE(open_match("a blue cube", "red cube"));
  EXPECT_TRUE(open_match("<think>maybe blue</think><answer>Red</answer>", "red"));
  EXPECT_TRUE(open_match("答案是：猫", "猫"));
}

}  // namespace
