// GRPO rewards (torch-free). The paper's reward (docs/MODEL.md#training-recipe-and-rewards):
//   0.1 if the WHOLE completion is `<think>...</think>` then `<answer>...</answer>` (optional
//       whitespace around and between the blocks, no nested or repeated tags), plus
//   0.9 if the text inside the first `<answer>...</answer>` grades equal to the solution.
// Also `exact` (1 if the answer equals the solution after text normalisation) and `choice`
// (1 if the answer names exactly the solution's option letter), and `scene_description` (the scenes
// world's long descriptions, engine/base/scenes.h: the solution is the true description; the value is
// the attributes described right over the true attributes plus those of every hallucinated object,
// so missing, wrong and invented objects all cost; `correct` = exact description, `format` = the
// object count stated).
//
// Grading is strict on purpose, against the known reward hacks: an empty answer, several options
// ("A or B", "A, B", "AB"), several numbers ("3 or 4"), two different \boxed{} all score 0.
// What counts as equal:
//   - choice letters: "B", "(B)", "[B]", "B.", "B)", "B:", "Option B", "Answer: B", "\text{B}",
//     "**B**", and "B. <option text>" when that text names no other standalone capital letter;
//   - numbers: 1,000 = 1000.0, -3, .5, 3/4 = 0.75 = \frac{3}{4} = \dfrac{3}{4} (braces required),
//     "x = 3" = 3, equal within 1e-9 relative; a percentage equals the same number with or without
//     "%" but is never converted (50% != 0.5); degree signs are ignored;
//   - short strings: case, surrounding whitespace/quotes/trailing period, a leading article
//     (a/an/the) and inner whitespace are ignored;
//   - LaTeX: $..$, \(..\), \[..\], one \boxed{} (or several with the same content), \text{},
//     \mathrm{}, \mathbf{}, \left/\right, thin spaces (\, \; \! \:) and \dfrac/\tfrac are unwrapped.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace pvm::rewards {

enum class Kind { ThinkAnswer, Exact, Choice, SceneDescription };
// "think_answer" | "exact" | "choice" | "scene_description"; anything else throws pvm::Error naming the value.
Kind parse_kind(const std::string& name);
const char* kind_name(Kind k);

struct Reward {
  double value = 0;     // the scalar reward used for advantages
  bool format = false;  // the strict think/answer structure holds
  bool correct = false; // the graded answer equals the solution
};

// The reward of one completion for `solution` (the dataset's "solution" field; when it is itself
// wrapped in <answer>..</answer> or \boxed{}, the inside is used). scene_description throws
// pvm::Error when the solution is not a scenes description (a data error, not a zero reward).
Reward score(Kind kind, std::string_view completion, std::string_view solution);

// --- building blocks (exposed for tests and for the evaluator) ---

// True when the whole completion is ws* <think>T</think> ws* <answer>A</answer> ws*, where T and A
// contain none of the four tags (the first closing tag closes the block).
bool strict_format(std::string_view completion);
// Text between the first "<answer>" and the first "</answer>" after it; nullopt when either is missing.
std::optional<std::string> first_answer(std::string_view completion);
// What exact/choice grade: the first answer when there is one, else the completion with a
// complete leading <think>...</think> block removed.
std::string answer_text(std::string_view completion);

// The strict grader behind the 0.9 accuracy part.
bool answers_equal(std::string_view answer, std::string_view solution);
// Exact match after text normalisation (case, whitespace, LaTeX wrappers; no numeric equivalence).
bool exact_equal(std::string_view answer, std::string_view solution);

// Answer with LaTeX wrappers, "answer is" prefixes, markdown emphasis, quotes and a trailing
// period removed (case kept). nullopt when the answer is ambiguous (two different \boxed{}).
std::optional<std::string> normalize(std::string_view answer);
// Exactly one option letter (upper case returned), else nullopt.
std::optional<char> choice_letter(std::string_view answer);

struct Number {
  double value = 0;
  bool percent = false;
};
// The whole (normalised) string as one number: [+-]digits with optional 1,000 groups and decimals,
// ".5", "a/b", "\frac{a}{b}", optional "%"; nothing else (no "nan", "inf", hex, units, "3 or 4").
std::optional<Number> parse_number(std::string_view s);

}  // namespace pvm::rewards
