// Rule-only answer extraction for evaluation and GRPO rewards (torch-free). No model judge, no
// fuzzy scoring and never a random pick: an output either states one answer by the rules below or
// it does not count.
//
// Multiple choice, extract_choice(output, option_texts) (option_texts[0] is option 'A'):
//  0. Scope: if the output has <answer>...</answer>, only the inside of the last one is read (an
//     unclosed <answer> reads to the end); else, if it has </think>, only the text after the last
//     </think>. Full-width ASCII (Ｂ，（Ｃ）：) becomes ASCII, 。、【】 become . , [ ], markdown
//     emphasis (* and `) is removed.
//  1. Masking: where an option's text itself holds a standalone capital ("Vitamin C", "Plan B",
//     "Point A"), its occurrences in the output are blanked before letters are looked for, so
//     "vitamin C" is never read as letter C (step 5 then matches it as option text).
//  2. A letter is a standalone token: "B", "(B)", "[B]", "{B}" (\boxed{B}), "B)", "B.", "B:",
//     never a letter inside a word ("Apple", "U.S.", "X-ray", "I'm"). Lowercase letters count only
//     bracketed ("(b)", "b)") or right after an answer cue. "A" / "I" followed by a word is the
//     article / pronoun ("A cat sits...", "I think"), unless the word is one that follows answer
//     letters ("A is correct", "A because"). With options given, only letters A..A+n-1 count.
//  3. Explicit answers (how "letter"): the whole output is one letter form ("B", "(b)", "B.",
//     "Answer: B", "答案：B"), or letters right after an answer cue ("the answer is", "answer:",
//     "correct option is", "I choose", "\boxed{", "答案是/为/：", "选/选择", "正确答案"), or right before a
//     confirming phrase ("B is correct", "(B) is the answer"); only when there is none of these, an
//     output opening with "B." / "B)" / "(B)" / "B:" alone on its line or followed by option B's
//     own text ("B. a blue sphere\nBecause ..."). One distinct letter = the answer; a cue followed by
//     "A or B" / "A, B" / "A/B" / "A或B", or two cues naming different letters = Ambiguous.
//  4. Refusals: without an explicit answer, a refusal phrase ("I cannot determine", "unable to",
//     "I'm sorry", "none of the options", "无法", "不能确定", ...) = Refusal (how "refusal").
//     "none of the ..." does not count when an option says it.
//  5. Other standalone letters anywhere (how "letter-mention"): exactly one distinct = the answer,
//     several distinct (a discussion of options, "A or B") = Ambiguous.
//  6. No letter at all: option-text match (how "option-text"): the normalized output equals an
//     option's normalized text, or holds exactly one option's text as whole words (an option whose
//     text contains another matched option's text wins over it: "black cat" over "cat"). Several =
//     Ambiguous. Nothing = None.
//
// Open answers, open_match(predicted, gold): the predicted answer is taken from <answer>..</answer>
// / after </think>, then the last \boxed{...}, else the text after the last answer cue ("answer
// is", "answer:", "答案是"), else the whole output; both sides go through normalize_open (lower
// case, LaTeX wrappers and \frac removed, articles and punctuation dropped, number words "zero" ..
// "twenty" as digits, "1,000" -> "1000"). Match when: equal; or both are numbers (fractions,
// percent signs and thousands separators allowed) equal within 1e-6 relative; or the gold is a
// number and the predicted text holds exactly one number, equal to it; or the gold is yes/no and
// the predicted text's first word is that same yes/no.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace pvm::answers {

enum class ChoiceKind { Letter, Refusal, None, Ambiguous };

struct ChoiceResult {
  ChoiceKind kind = ChoiceKind::None;
  char letter = 0;   // 'A'.. when kind == Letter
  std::string how;   // "letter" | "letter-mention" | "option-text" | "refusal" | "ambiguous" | "none"
};

const char* kind_name(ChoiceKind k);  // "letter" | "refusal" | "none" | "ambiguous"

ChoiceResult extract_choice(const std::string& output, const std::vector<std::string>& option_texts);

// The part of an output that holds the answer (step 0 above): inside the last <answer>..</answer>,
// or after the last </think>, or the whole output.
std::string answer_scope(const std::string& output);

// Canonical form of a short answer (see above); numbers come out in a canonical decimal form
// ("1/2", "0.50", "\frac{1}{2}" -> "0.5").
std::string normalize_open(const std::string& s);
bool open_match(const std::string& predicted, const std::string& gold);
// The short answer open_match compares (after scope, \boxed, answer cues), not yet normalized.
std::string extract_open(const std::string& output);

bool is_refusal(const std::string& output);

// A number written as "12", "-3.5", "1,000", "3/4", "50%", "\frac{3}{4}", "1e-3" (nothing else).
std::optional<double> parse_number(const std::string& s);

}  // namespace pvm::answers
