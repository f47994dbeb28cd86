#include "engine/base/rewards.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <vector>

#include "engine/base/error.h"
#include "engine/base/scenes.h"

namespace pvm::rewards {

namespace {

constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";
constexpr std::string_view kAnswerOpen = "<answer>", kAnswerClose = "</answer>";

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_ws(s[b])) ++b;
  while (e > b && is_ws(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}
bool istarts_with(std::string_view s, std::string_view p) {
  if (s.size() < p.size()) return false;
  for (size_t i = 0; i < p.size(); ++i)
    if (lower(s[i]) != lower(p[i])) return false;
  return true;
}

bool contains_tag(std::string_view s) {
  for (auto t : {kThinkOpen, kThinkClose, kAnswerOpen, kAnswerClose})
    if (s.find(t) != std::string_view::npos) return true;
  return false;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  size_t p = 0;
  while ((p = s.find(from, p)) != std::string::npos) {
    s.replace(p, from.size(), to);
    p += to.size();
  }
}

// Index just past the brace group starting at s[open] == '{' (nested braces balanced), or npos.
size_t match_brace(std::string_view s, size_t open) {
  if (open >= s.size() || s[open] != '{') return std::string_view::npos;
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return i + 1;
  }
  return std::string_view::npos;
}

// Remove a LaTeX command `cmd` (e.g. "\left") only where it is not the prefix of a longer command
// name ("\leftarrow" stays).
void remove_command(std::string& s, std::string_view cmd) {
  size_t p = 0;
  while ((p = s.find(cmd, p)) != std::string::npos) {
    size_t e = p + cmd.size();
    if (e < s.size() && is_alpha(s[e])) {
      p = e;
      continue;
    }
    s.erase(p, cmd.size());
  }
}

// \text{X} -> X for the wrapper commands whose content is plain text.
void unwrap_commands(std::string& s) {
  for (std::string_view cmd : {"\\text", "\\textbf", "\\textit", "\\textrm", "\\mathrm", "\\mathbf", "\\mathit",
                               "\\mbox", "\\operatorname"}) {
    size_t p = 0;
    while ((p = s.find(cmd, p)) != std::string::npos) {
      size_t b = p + cmd.size();
      if (b < s.size() && is_alpha(s[b])) {  // a longer command name
        p = b;
        continue;
      }
      size_t e = match_brace(s, b);
      if (e == std::string::npos) {
        p = b;
        continue;
      }
      s = s.substr(0, p) + s.substr(b + 1, e - b - 2) + s.substr(e);
    }
  }
}

std::string latex_cleanup(std::string s) {
  replace_all(s, "\xE2\x88\x92", "-");  // U+2212 minus sign
  replace_all(s, "\\dfrac", "\\frac");
  replace_all(s, "\\tfrac", "\\frac");
  replace_all(s, "\\%", "%");
  replace_all(s, "^{\\circ}", "");
  replace_all(s, "^\\circ", "");
  replace_all(s, "\xC2\xB0", "");  // degree sign
  remove_command(s, "\\degree");
  remove_command(s, "\\displaystyle");
  remove_command(s, "\\left");
  remove_command(s, "\\right");
  for (std::string_view sp : {"\\!", "\\,", "\\;", "\\:"}) replace_all(s, sp, "");
  replace_all(s, "\\ ", " ");
  unwrap_commands(s);
  return s;
}

// The content of the \boxed{} / \fbox{} groups. ok=false when two groups differ.
struct Boxed {
  bool found = false, ok = true;
  std::string content;
};
Boxed find_boxed(std::string_view s) {
  Boxed r;
  for (std::string_view cmd : {"\\boxed", "\\fbox"}) {
    size_t p = 0;
    while ((p = s.find(cmd, p)) != std::string_view::npos) {
      size_t b = skip_ws(s, p + cmd.size());
      size_t e = match_brace(s, b);
      if (e == std::string_view::npos) {  // "\boxed 3" or unbalanced: cannot tell what is boxed
        r.ok = false;
        return r;
      }
      std::string c = trim(s.substr(b + 1, e - b - 2));
      if (r.found && c != r.content) r.ok = false;
      r.found = true;
      r.content = c;
      p = e;
    }
  }
  return r;
}

// Phrases that introduce an answer; removed from the front (case-insensitive), longest first.
const std::vector<std::string_view>& answer_prefixes() {
  static const std::vector<std::string_view> p = {
      "the final answer is", "the correct answer is", "the correct option is", "final answer is",
      "the answer is",       "correct answer is",     "final answer",          "correct answer",
      "answer is",           "answer",                "option",                "choice"};
  return p;
}

std::optional<std::string> normalize_impl(std::string_view in) {
  std::string s = trim(in);
  for (int iter = 0; iter < 8; ++iter) {
    std::string before = s;
    s = trim(latex_cleanup(s));
    auto boxed = find_boxed(s);
    if (!boxed.ok) return std::nullopt;
    if (boxed.found) s = boxed.content;
    // Math delimiters around the whole answer.
    for (auto [open, close] : {std::pair<std::string_view, std::string_view>{"$$", "$$"},
                               {"$", "$"},
                               {"\\(", "\\)"},
                               {"\\[", "\\]"},
                               {"**", "**"},
                               {"*", "*"},
                               {"`", "`"},
                               {"\"", "\""},
                               {"'", "'"}}) {
      if (s.size() >= open.size() + close.size() && starts_with(s, open) && ends_with(s, close)) {
        s = trim(std::string_view(s).substr(open.size(), s.size() - open.size() - close.size()));
        break;
      }
    }
    for (auto p : answer_prefixes()) {
      // A whole-word prefix only ("answers" or "optional" stay).
      if (istarts_with(s, p) && (s.size() == p.size() || !is_alpha(s[p.size()]))) {
        size_t i = skip_ws(s, p.size());
        if (i < s.size() && s[i] == ':') i = skip_ws(s, i + 1);
        s = s.substr(i);
        break;
      }
    }
    while (!s.empty() && (s.back() == '.' || s.back() == ';' || s.back() == '!' || s.back() == '?')) s.pop_back();
    s = trim(s);
    if (s == before) break;
  }
  return s;
}

// A letter with its decoration: "B", "(B)", "[B]", "B.", "B)", "B:", then optional option text.
struct LetterParse {
  char letter = 0;
  bool has_text = false;
};
std::optional<LetterParse> parse_letter(std::string_view s) {
  if (s.empty()) return std::nullopt;
  size_t i = 0;
  char c = 0;
  if ((s[0] == '(' || s[0] == '[') && s.size() >= 3 && is_alpha(s[1]) && s[2] == (s[0] == '(' ? ')' : ']')) {
    c = s[1];
    i = 3;
  } else if (is_alpha(s[0]) && (s.size() == 1 || s[1] == '.' || s[1] == ')' || s[1] == ':')) {
    c = s[0];
    i = s.size() == 1 ? 1 : 2;
  } else {
    return std::nullopt;
  }
  if (i == s.size()) return LetterParse{char(std::toupper((unsigned char)c)), false};
  // Option text after the letter: must be separated by whitespace, letter upper case, and the text
  // may not name another option ("(A) or (B)", "A. no, C").
  if (!is_upper(c) || !is_ws(s[i])) return std::nullopt;
  for (size_t k = i; k < s.size(); ++k) {
    if (!is_upper(s[k])) continue;
    bool left = k == 0 || !(is_alpha(s[k - 1]) || is_digit(s[k - 1]));
    bool right = k + 1 == s.size() || !(is_alpha(s[k + 1]) || is_digit(s[k + 1]));
    if (left && right) return std::nullopt;
  }
  return LetterParse{c, true};
}

// Unsigned decimal at s[i..]: digits with optional strict 1,000 grouping, optional fraction, or ".5".
// Returns the end index, or npos. Appends the plain digits to `out`.
size_t scan_decimal(std::string_view s, size_t i, std::string& out) {
  size_t start = i;
  size_t first_group = 0;
  while (i < s.size() && is_digit(s[i])) out += s[i++], ++first_group;
  if (first_group > 0 && i < s.size() && s[i] == ',') {
    if (first_group > 3) return std::string_view::npos;
    while (i < s.size() && s[i] == ',') {
      size_t k = i + 1, n = 0;
      while (k < s.size() && is_digit(s[k])) ++k, ++n;
      if (n != 3) return std::string_view::npos;
      out.append(s.substr(i + 1, 3));
      i = k;
    }
  }
  if (i < s.size() && s[i] == '.') {
    size_t k = i + 1, n = 0;
    while (k < s.size() && is_digit(s[k])) ++k, ++n;
    if (n == 0 && first_group == 0) return std::string_view::npos;
    out += '.';
    out.append(s.substr(i + 1, n));
    i = k;
  }
  return i == start || out.empty() || out == "." ? std::string_view::npos : i;
}

// Optional sign then an unsigned decimal; the whole of `s` (trimmed) must be used.
std::optional<double> parse_signed(std::string_view s) {
  std::string t = trim(s);
  size_t i = 0;
  bool neg = false;
  if (i < t.size() && (t[i] == '-' || t[i] == '+')) neg = t[i++] == '-';
  i = skip_ws(t, i);
  std::string digits;
  size_t e = scan_decimal(t, i, digits);
  if (e == std::string_view::npos || e != t.size()) return std::nullopt;
  double v = std::strtod(digits.c_str(), nullptr);  // digits is [0-9]*(.[0-9]*)? only
  return neg ? -v : v;
}

bool numbers_close(double a, double b) {
  return std::fabs(a - b) <= 1e-9 * std::max({1.0, std::fabs(a), std::fabs(b)});
}

// Strip one "x =" (single-letter variable) in front of a number.
std::optional<Number> parse_number_or_assignment(std::string_view s) {
  if (auto n = parse_number(s)) return n;
  std::string t = trim(s);
  if (t.size() >= 2 && is_alpha(t[0])) {
    size_t i = skip_ws(t, 1);
    if (i < t.size() && t[i] == '=') return parse_number(std::string_view(t).substr(i + 1));
  }
  return std::nullopt;
}

std::string solution_text(std::string_view solution) {
  if (auto a = first_answer(solution)) return *a;
  return std::string(solution);
}

// String canon for the accuracy grader: lower case, a leading article dropped, whitespace removed.
std::string canon_loose(const std::string& s) {
  std::string t;
  for (char c : s) t += lower(c);
  for (std::string_view art : {"the ", "an ", "a "}) {
    if (starts_with(t, art) && t.size() > art.size()) {
      t = t.substr(art.size());
      break;
    }
  }
  std::string out;
  for (char c : t)
    if (!is_ws(c)) out += c;
  return out;
}

// String canon for `exact`: lower case, whitespace runs collapsed to one space.
std::string canon_exact(const std::string& s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (is_ws(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += lower(c);
  }
  return out;
}

// The truth of a scene_description item: its description parsed back into a scene, under the
// attribute sets the description uses (textures and digits are optional in the scenes world).
scenes::Scene scene_of_description(std::string_view solution) {
  const std::string text(solution);
  for (int flags = 0; flags < 4; ++flags) {
    scenes::SceneOptions opt;
    opt.textures = flags & 1;
    opt.digits = flags & 2;
    if (auto sc = scenes::parse_description(text, opt)) return *sc;
  }
  std::string head = text.substr(0, 60);
  throw Error("scene_description reward: the solution is not a scenes description: '" + head +
              (text.size() > 60 ? "...'" : "'"));
}

}  // namespace

Kind parse_kind(const std::string& name) {
  if (name == "think_answer") return Kind::ThinkAnswer;
  if (name == "exact") return Kind::Exact;
  if (name == "choice") return Kind::Choice;
  if (name == "scene_description") return Kind::SceneDescription;
  throw Error("grpo.reward: unknown reward '" + name + "' (expected think_answer, exact, choice or scene_description)");
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::ThinkAnswer: return "think_answer";
    case Kind::Exact: return "exact";
    case Kind::Choice: return "choice";
    case Kind::SceneDescription: return "scene_description";
  }
  return "?";
}

bool strict_format(std::string_view s) {
  size_t i = skip_ws(s, 0);
  if (s.substr(i, kThinkOpen.size()) != kThinkOpen) return false;
  i += kThinkOpen.size();
  size_t j = s.find(kThinkClose, i);
  if (j == std::string_view::npos || contains_tag(s.substr(i, j - i))) return false;
  i = skip_ws(s, j + kThinkClose.size());
  if (s.substr(i, kAnswerOpen.size()) != kAnswerOpen) return false;
  i += kAnswerOpen.size();
  j = s.find(kAnswerClose, i);
  if (j == std::string_view::npos || contains_tag(s.substr(i, j - i))) return false;
  return skip_ws(s, j + kAnswerClose.size()) == s.size();
}

std::optional<std::string> first_answer(std::string_view s) {
  size_t i = s.find(kAnswerOpen);
  if (i == std::string_view::npos) return std::nullopt;
  i += kAnswerOpen.size();
  size_t j = s.find(kAnswerClose, i);
  if (j == std::string_view::npos) return std::nullopt;
  return std::string(s.substr(i, j - i));
}

std::string answer_text(std::string_view s) {
  if (auto a = first_answer(s)) return trim(*a);
  size_t i = skip_ws(s, 0);
  if (s.substr(i, kThinkOpen.size()) == kThinkOpen) {
    size_t j = s.find(kThinkClose, i);
    if (j != std::string_view::npos) return trim(s.substr(j + kThinkClose.size()));
  }
  return trim(s);
}

std::optional<std::string> normalize(std::string_view answer) { return normalize_impl(answer); }

std::optional<char> choice_letter(std::string_view answer) {
  auto n = normalize_impl(answer);
  if (!n) return std::nullopt;
  auto p = parse_letter(*n);
  if (!p) return std::nullopt;
  return p->letter;
}

std::optional<Number> parse_number(std::string_view in) {
  std::string s = trim(in);
  Number r;
  if (ends_with(s, "%")) {
    r.percent = true;
    s = trim(std::string_view(s).substr(0, s.size() - 1));
  }
  if (s.empty()) return std::nullopt;
  // Sign in front of \frac.
  bool neg = false;
  size_t i = 0;
  if (s[0] == '-' || s[0] == '+') {
    size_t k = skip_ws(s, 1);
    if (starts_with(std::string_view(s).substr(k), "\\frac")) neg = s[0] == '-', i = k;
  }
  if (starts_with(std::string_view(s).substr(i), "\\frac")) {
    size_t b1 = skip_ws(s, i + 5), e1 = match_brace(s, b1);
    if (e1 == std::string::npos) return std::nullopt;
    size_t b2 = skip_ws(s, e1), e2 = match_brace(s, b2);
    if (e2 == std::string::npos || skip_ws(s, e2) != s.size()) return std::nullopt;
    auto num = parse_signed(std::string_view(s).substr(b1 + 1, e1 - b1 - 2));
    auto den = parse_signed(std::string_view(s).substr(b2 + 1, e2 - b2 - 2));
    if (!num || !den || *den == 0) return std::nullopt;
    r.value = (neg ? -1 : 1) * (*num / *den);
    return r;
  }
  size_t slash = s.find('/');
  if (slash != std::string::npos) {
    auto num = parse_signed(std::string_view(s).substr(0, slash));
    std::string dtxt = trim(std::string_view(s).substr(slash + 1));
    if (dtxt.empty() || dtxt[0] == '-' || dtxt[0] == '+') return std::nullopt;
    auto den = parse_signed(dtxt);
    if (!num || !den || *den == 0) return std::nullopt;
    r.value = *num / *den;
    return r;
  }
  auto v = parse_signed(s);
  if (!v) return std::nullopt;
  r.value = *v;
  return r;
}

bool answers_equal(std::string_view answer, std::string_view solution) {
  auto a = normalize_impl(answer);
  auto s = normalize_impl(solution_text(solution));
  if (!a || !s || a->empty() || s->empty()) return false;
  // A solution that is exactly one capital option letter: the answer must name that letter alone.
  if (auto sl = parse_letter(*s); sl && !sl->has_text && (s->size() > 1 || is_upper((*s)[0]))) {
    auto al = parse_letter(*a);
    return al && al->letter == sl->letter;
  }
  if (auto sn = parse_number_or_assignment(*s)) {
    auto an = parse_number_or_assignment(*a);
    // "%" is a unit here: 50% == 50, but 0.5 != 50% (never converted).
    return an && numbers_close(an->value, sn->value);
  }
  return canon_loose(*a) == canon_loose(*s);
}

bool exact_equal(std::string_view answer, std::string_view solution) {
  auto a = normalize_impl(answer);
  auto s = normalize_impl(solution_text(solution));
  if (!a || !s) return false;
  auto ca = canon_exact(*a), cs = canon_exact(*s);
  return !ca.empty() && ca == cs;
}

Reward score(Kind kind, std::string_view completion, std::string_view solution) {
  Reward r;
  r.format = strict_format(completion);
  switch (kind) {
    case Kind::ThinkAnswer: {
      auto a = first_answer(completion);
      r.correct = a && answers_equal(*a, solution);
      r.value = (r.format ? 0.1 : 0.0) + (r.correct ? 0.9 : 0.0);
      break;
    }
    case Kind::Exact:
      r.correct = exact_equal(answer_text(completion), solution);
      r.value = r.correct ? 1.0 : 0.0;
      break;
    case Kind::Choice: {
      auto sl = choice_letter(solution_text(solution));
      auto al = choice_letter(answer_text(completion));
      r.correct = sl && al && *sl == *al;
      r.value = r.correct ? 1.0 : 0.0;
      break;
    }
    case Kind::SceneDescription: {
      const scenes::Scene truth = scene_of_description(solution);
      const scenes::Grade g = scenes::grade(truth, std::string(completion));
      // Each invented object costs as many attributes as a true one has (the first object's count).
      const int per_object = g.objects.empty() ? 0 : g.objects.front().attributes_total;
      const int denom = g.attributes_total + per_object * g.hallucinated;
      r.value = denom > 0 ? double(g.attributes_correct) / double(denom) : 0.0;
      r.correct = g.accuracy == 1.0 && g.hallucinated == 0 && g.missing == 0;
      r.format = g.count_stated;
      break;
    }
  }
  return r;
}

}  // namespace pvm::rewards
