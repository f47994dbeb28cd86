#include "engine/base/answer_extract.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <set>

#include "engine/base/tokenizer_text.h"

namespace pvm::answers {

namespace {

using U = std::u32string;

// ---- text preparation -------------------------------------------------------------------------

U to_u32(const std::string& s) {
  std::string clean = text::utf8_sanitize(s);
  U out;
  out.reserve(clean.size());
  for (size_t i = 0; i < clean.size();) out.push_back(text::utf8_next(clean.data(), i));
  return out;
}

std::string to_utf8(const U& u) {
  std::string s;
  for (char32_t c : u) text::utf8_append(s, c);
  return s;
}

// Full-width ASCII -> ASCII, CJK punctuation -> ASCII, markdown emphasis removed.
U fold_chars(const U& in) {
  U out;
  out.reserve(in.size());
  for (char32_t c : in) {
    if (c >= 0xFF01 && c <= 0xFF5E) c -= 0xFEE0;
    switch (c) {
      case 0x3000: case 0x00A0: c = ' '; break;
      case 0x3002: c = '.'; break;  // 。
      case 0x3001: c = ','; break;  // 、
      case 0x3010: case 0x3014: c = '['; break;  // 【〔
      case 0x3011: case 0x3015: c = ']'; break;  // 】〕
      case 0x300C: case 0x300D: case 0x300E: case 0x300F: case 0x201C: case 0x201D: c = '"'; break;
      case 0x2018: case 0x2019: c = '\''; break;
      default: break;
    }
    if (c == '*' || c == '`') continue;
    out.push_back(c);
  }
  return out;
}

// Word characters: ASCII letters/digits and non-CJK letters/digits/marks (so "é" joins a word, while
// Chinese text next to a letter, as in 选B项, does not).
bool is_word(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
  if (c >= 0x2E80) return false;
  return (text::char_class(c) & (text::kLetter | text::kNumber | text::kMark)) != 0;
}
bool is_space(char32_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_upper(char32_t c) { return c >= 'A' && c <= 'Z'; }
bool is_lower(char32_t c) { return c >= 'a' && c <= 'z'; }

// One byte per code point, index-aligned with the U string, lower-cased ASCII; the CJK characters
// the cue / refusal rules use get private control bytes, other non-ASCII a word / non-word byte.
char align_byte(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? char(c + 32) : (c == 0 ? ' ' : char(c));
  switch (c) {
    case U'答': return '\x01';
    case U'案': return '\x02';
    case U'是': return '\x03';
    case U'为': return '\x04';
    case U'选': return '\x05';
    case U'择': return '\x06';
    case U'项': return '\x07';
    case U'正': return '\x0e';
    case U'确': return '\x0f';
    case U'应': return '\x10';
    case U'该': return '\x11';
    case U'或': return '\x12';
    case U'和': return '\x13';
    case U'与': return '\x14';
    case U'故': return '\x15';
    default: return is_word(c) ? '\x16' : '\x17';
  }
}
std::string aligned(const U& u) {
  std::string s(u.size(), ' ');
  for (size_t i = 0; i < u.size(); ++i) s[i] = align_byte(u[i]);
  return s;
}

std::string lower_ascii(std::string s) {
  for (auto& ch : s)
    if (ch >= 'A' && ch <= 'Z') ch = char(ch + 32);
  return s;
}

// ---- scope --------------------------------------------------------------------------------------

std::string scope_of(const std::string& s) {
  std::string low = lower_ascii(s);
  auto open = low.rfind("<answer>");
  if (open != std::string::npos) {
    size_t b = open + 8;
    auto close = low.find("</answer>", b);
    return s.substr(b, close == std::string::npos ? std::string::npos : close - b);
  }
  auto think = low.rfind("</think>");
  if (think != std::string::npos) return s.substr(think + 8);
  return s;
}

// ---- letter tokens ------------------------------------------------------------------------------

enum class Form { Bracket, Paren, Dot, Colon, Bare };

struct LetterTok {
  size_t begin = 0, end = 0;  // [begin, end) in the U string
  char32_t raw = 0;           // as written (case kept)
  char letter = 0;            // upper case
  Form form = Form::Bare;
  bool followed_by_word = false;  // bare letter, then spaces and a word
  std::string next_word;          // that word, lower case ASCII
};

bool is_letter(char32_t c) { return is_upper(c) || is_lower(c); }

// A standalone letter token starting at t[i] ("(B)", "[b]", "{B}", "B)", "B.", "B:", "B").
bool parse_letter(const U& t, size_t i, LetterTok& out) {
  const size_t n = t.size();
  if (i >= n) return false;
  auto at = [&](size_t k) -> char32_t { return k < n ? t[k] : 0; };
  auto prev_ok = [&](size_t k) {  // t[k] starts a token: nothing word-like before it
    if (k == 0) return true;
    char32_t p = t[k - 1];
    if (is_word(p)) return false;
    // "e.g." / "U.S." continuation, "X-ray" / "o'clock" style joins.
    if ((p == '.' || p == '-' || p == '\'' || p == 0x2019) && k >= 2 && is_word(t[k - 2])) return false;
    return true;
  };
  char32_t c = t[i];
  if ((c == '(' || c == '[' || c == '{') && is_letter(at(i + 1))) {
    char32_t close = c == '(' ? ')' : c == '[' ? ']' : '}';
    if (at(i + 2) != close || !prev_ok(i)) return false;
    if (i > 0 && t[i - 1] == '\\') return false;  // \(x\) style LaTeX
    out = LetterTok{i, i + 3, at(i + 1), char(std::toupper(int(at(i + 1)))), Form::Bracket, false, ""};
    return true;
  }
  if (!is_letter(c) || !prev_ok(i)) return false;
  if (i > 0 && t[i - 1] == '\\') return false;  // LaTeX command
  char32_t nx = at(i + 1);
  if (is_word(nx)) return false;
  if ((nx == '-' || nx == '\'' || nx == 0x2019) && is_word(at(i + 2))) return false;
  out = LetterTok{i, i + 1, c, char(std::toupper(int(c))), Form::Bare, false, ""};
  if (nx == ')' || nx == ']') {
    out.form = Form::Paren;
    out.end = i + 2;
  } else if (nx == '.') {
    if (is_word(at(i + 2))) return false;  // abbreviation "U.S", "e.g"
    out.form = Form::Dot;
    out.end = i + 2;
  } else if (nx == ':') {
    out.form = Form::Colon;
    out.end = i + 2;
  } else {
    size_t k = i + 1;
    while (k < n && (t[k] == ' ' || t[k] == '\t')) ++k;
    if (k > i + 1 && k < n && is_word(t[k]) && t[k] < 0x80) {
      out.followed_by_word = true;
      size_t e = k;
      while (e < n && is_word(t[e]) && t[e] < 0x80) ++e;
      out.next_word = lower_ascii(to_utf8(t.substr(k, e - k)));
    }
  }
  return true;
}

// Words after which a bare "A" / "I" / lowercase letter is still an answer letter.
bool connector(const std::string& w) {
  static const std::set<std::string> k = {"because", "since", "as", "is", "was", "would", "should", "seems",
                                          "appears", "fits", "matches", "corresponds", "which", "must",
                                          "or", "and", "nor", "vs", "versus"};
  return k.count(w) > 0;
}

// Explicit context (after an answer cue, or the whole answer): any case; an article-like reading
// ("answer is a cat") is refused.
bool accept_explicit(const LetterTok& tk) {
  if (tk.form != Form::Bare || !tk.followed_by_word) return true;
  if (is_lower(tk.raw) || tk.raw == 'A' || tk.raw == 'I') return connector(tk.next_word);
  return true;
}

// A mention anywhere else: bracketed / "b)" any case; "B." "B:" and bare letters upper case only;
// "A"/"I" before a word are the article / pronoun.
bool accept_mention(const LetterTok& tk) {
  switch (tk.form) {
    case Form::Bracket:
    case Form::Paren: return true;
    case Form::Dot:
    case Form::Colon: return is_upper(tk.raw);
    case Form::Bare:
      if (!is_upper(tk.raw)) return false;
      if (tk.raw == 'I') return false;  // pronoun / roman numeral unless bracketed or "I."
      if (tk.raw == 'A' && tk.followed_by_word) return connector(tk.next_word);
      return true;
  }
  return false;
}

// ---- cues ---------------------------------------------------------------------------------------

const std::regex& cue_re() {
  static const std::regex re(
      R"(\banswer\s*(?:is\b|would be\b|should be\b|must be\b|will be\b|:|=)|)"
      R"(\b(?:correct|right|best|final|most (?:likely|appropriate|accurate|suitable|reasonable)) )"
      R"((?:answer|option|choice|one)\s*(?:is\b|would be\b|should be\b|:|=)?|)"
      R"(\bi\s*(?:would |will |'d |'ll |)(?:choose|select|pick|go with)\b|)"
      R"(\\boxed\{|)"
      "\x01\x02|\x15?\x05\x06?(?!\x07)",
      std::regex::ECMAScript | std::regex::optimize);
  return re;
}

// Skips what may sit between a cue and its letter: spaces, ':', '=', quotes, "is", "option", 是, ...
size_t skip_filler(const std::string& a, size_t p) {
  static const char* words[] = {"the", "option", "choice", "letter", "is", "be", "therefore", "probably",
                                "likely", "clearly", "definitely", "thus", "so"};
  for (int iter = 0; iter < 8; ++iter) {
    size_t q = p;
    while (q < a.size() && std::strchr(" \t\n\r:=\"'\x03\x04\x07\x10\x11", a[q]) && a[q] != 0) ++q;
    bool moved = q != p;
    p = q;
    for (const char* w : words) {
      size_t L = std::strlen(w);
      if (a.compare(p, L, w) == 0 && (p + L >= a.size() || !(std::isalnum((unsigned char)a[p + L]) || a[p + L] == '\x16'))) {
        p += L;
        moved = true;
        break;
      }
    }
    if (!moved) break;
  }
  return p;
}

// After a letter: "or B", ", C", "/B", "或B", "和C" -> another letter (the cue names several).
bool disjunction_after(const U& t, const std::string& a, size_t p) {
  size_t q = p;
  while (q < a.size() && (a[q] == ' ' || a[q] == '\t')) ++q;
  size_t r = q;
  if (q < a.size() && (a[q] == ',' || a[q] == '/' || a[q] == '\x12' || a[q] == '\x13' || a[q] == '\x14' || a[q] == '&'))
    r = q + 1;
  else if (a.compare(q, 2, "or") == 0 && q + 2 < a.size() && !std::isalnum((unsigned char)a[q + 2]))
    r = q + 2;
  else if (a.compare(q, 3, "and") == 0 && q + 3 < a.size() && !std::isalnum((unsigned char)a[q + 3]))
    r = q + 3;
  else
    return false;
  while (r < a.size() && (a[r] == ' ' || a[r] == '\t')) ++r;
  r = skip_filler(a, r);
  LetterTok tk;
  return parse_letter(t, r, tk) && accept_explicit(tk);
}

const std::regex& post_cue_re() {
  static const std::regex re(
      R"(^\s*(?:is|seems to be|appears to be|would be|should be)\s+(?:the\s+)?(?:correct|right|best|answer|true|most)\b|^\s*\x03?\x0e\x0f)",
      std::regex::ECMAScript | std::regex::optimize);
  return re;
}

// ---- refusals -----------------------------------------------------------------------------------

const std::regex& refusal_re() {
  static const std::regex re(
      R"(\bi\s*(?:cannot|can't|can not|am unable to|'m unable to|am not able to|'m not able to)\s+)"
      R"((?:determine|tell|answer|identify|see|say|decide|be certain|be sure|provide|help|assist|view|access|answer)\b|)"
      R"(\bunable to (?:determine|tell|answer|identify|decide|see)\b|)"
      R"(\b(?:cannot|can't|can not|impossible to|not possible to)\s+(?:be\s+)?(?:determined?|tell|answer(?:ed)?|identif(?:y|ied)|decided?)\b|)"
      R"(\bi(?:'m| am) sorry\b|\bi apologi[sz]e\b|\bnot enough information\b|\binsufficient information\b|)"
      R"(\bno (?:correct|valid) (?:answer|option)\b|\bnone of the (?:options|choices|above|given)\b|)"
      R"(\bthere is no (?:image|picture)\b)",
      std::regex::ECMAScript | std::regex::optimize);
  return re;
}
// ("不确定" alone would also hit the noun 不确定性, "uncertainty".)
const char* const kRefusalZh[] = {"无法", "不能确定", "抱歉", "没有正确"};

// Option text normalized for matching: lower case, non-word characters as single spaces.
std::string norm_words(const std::string& s) {
  U u = fold_chars(to_u32(s));
  std::string out;
  bool space = true;
  for (char32_t c : u) {
    if (is_word(c) || c >= 0x2E80) {
      if (c < 0x80 && c >= 'A' && c <= 'Z') c += 32;
      text::utf8_append(out, c);
      space = false;
    } else if (!space) {
      out.push_back(' ');
      space = true;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

bool has_cjk(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0xE0) return true;
  return false;
}

// Whole-word containment (plain containment for CJK text, which has no spaces).
bool contains_words(const std::string& hay, const std::string& needle) {
  if (needle.empty()) return false;
  if (has_cjk(needle)) return hay.find(needle) != std::string::npos;
  return (" " + hay + " ").find(" " + needle + " ") != std::string::npos;
}

bool refusal_in(const std::string& scope, const std::vector<std::string>& options) {
  std::vector<std::string> nopts;
  for (auto& o : options) nopts.push_back(norm_words(o));
  auto in_option = [&](const std::string& phrase) {
    std::string np = norm_words(phrase);
    for (auto& o : nopts)
      if (!np.empty() && o.find(np) != std::string::npos) return true;
    return false;
  };
  std::string a = aligned(fold_chars(to_u32(scope)));
  for (auto it = std::sregex_iterator(a.begin(), a.end(), refusal_re()); it != std::sregex_iterator(); ++it)
    if (!in_option(it->str())) return true;
  for (const char* z : kRefusalZh)
    if (scope.find(z) != std::string::npos && !in_option(z)) return true;
  return false;
}

// Blank the occurrences of option texts that themselves contain a standalone capital ("Plan B").
void mask_option_texts(U& t, std::string& a, const std::vector<std::string>& options) {
  for (auto& opt : options) {
    U ou = fold_chars(to_u32(opt));
    bool has_letter = false;
    for (size_t i = 0; i < ou.size(); ++i) {
      LetterTok tk;
      if (parse_letter(ou, i, tk) && is_upper(tk.raw)) has_letter = true;
    }
    if (!has_letter || ou.size() < 2) continue;
    std::string oa = aligned(ou);
    // trim the option's own surrounding spaces
    size_t b = oa.find_first_not_of(" \t\n"), e = oa.find_last_not_of(" \t\n");
    if (b == std::string::npos) continue;
    oa = oa.substr(b, e - b + 1);
    for (size_t pos = a.find(oa); pos != std::string::npos; pos = a.find(oa, pos + 1)) {
      size_t end = pos + oa.size();
      bool left = pos == 0 || !is_word(t[pos - 1]);
      bool right = end >= t.size() || !is_word(t[end]);
      if (!left || !right) continue;
      for (size_t k = pos; k < end; ++k) {
        t[k] = ' ';
        a[k] = ' ';
      }
    }
  }
}

ChoiceResult make(ChoiceKind k, char letter, const char* how) {
  ChoiceResult r;
  r.kind = k;
  r.letter = letter;
  r.how = how;
  return r;
}

// Step 6: option-text match.
ChoiceResult match_option_text(const std::string& scope, const std::vector<std::string>& options) {
  std::string out = norm_words(scope);
  if (out.empty() || options.empty()) return make(ChoiceKind::None, 0, "none");
  std::vector<std::string> no;
  for (auto& o : options) no.push_back(norm_words(o));
  std::vector<size_t> exact, contained;
  for (size_t i = 0; i < no.size(); ++i) {
    if (no[i].empty()) continue;
    if (no[i] == out) exact.push_back(i);
    if (contains_words(out, no[i])) contained.push_back(i);
  }
  // Equal texts under two letters (a malformed item) are never resolved by picking one.
  if (exact.size() == 1) return make(ChoiceKind::Letter, char('A' + exact[0]), "option-text");
  if (exact.size() > 1) return make(ChoiceKind::Ambiguous, 0, "ambiguous");
  std::vector<size_t> keep;
  for (size_t i : contained) {
    bool inside_other = false;
    for (size_t j : contained)
      if (j != i && no[j] != no[i] && contains_words(no[j], no[i])) inside_other = true;
    if (!inside_other) keep.push_back(i);
  }
  if (keep.size() == 1) return make(ChoiceKind::Letter, char('A' + keep[0]), "option-text");
  if (keep.size() > 1) return make(ChoiceKind::Ambiguous, 0, "ambiguous");
  return make(ChoiceKind::None, 0, "none");
}

}  // namespace

const char* kind_name(ChoiceKind k) {
  switch (k) {
    case ChoiceKind::Letter: return "letter";
    case ChoiceKind::Refusal: return "refusal";
    case ChoiceKind::None: return "none";
    case ChoiceKind::Ambiguous: return "ambiguous";
  }
  return "none";
}

std::string answer_scope(const std::string& output) { return scope_of(output); }

ChoiceResult extract_choice(const std::string& output, const std::vector<std::string>& option_texts) {
  const std::string scope = scope_of(output);
  U t = fold_chars(to_u32(scope));
  std::string a = aligned(t);
  mask_option_texts(t, a, option_texts);
  const int n_letters = option_texts.empty() ? 26 : int(std::min<size_t>(option_texts.size(), 26));
  auto valid = [&](char L) { return L >= 'A' && L < 'A' + n_letters; };

  // Step 3: explicit letters: the whole answer, letters after cues, letters before confirming
  // phrases; only when there are none, an opening "B." / "(B)" / "B)" / "B:".
  std::set<char> explicit_letters;
  bool disjunction = false;
  {
    size_t b = 0, e = t.size();
    while (b < e && (is_space(t[b]) || t[b] == '"' || t[b] == '\'')) ++b;
    while (e > b && (is_space(t[e - 1]) || t[e - 1] == '.' || t[e - 1] == '"' || t[e - 1] == '\'' || t[e - 1] == '!')) --e;
    LetterTok tk;
    if (e > b && parse_letter(t, b, tk) && tk.end >= e) explicit_letters.insert(tk.letter);
  }
  for (auto it = std::sregex_iterator(a.begin(), a.end(), cue_re()); it != std::sregex_iterator(); ++it) {
    size_t p = skip_filler(a, size_t(it->position() + it->length()));
    LetterTok tk;
    if (parse_letter(t, p, tk) && accept_explicit(tk)) {
      explicit_letters.insert(tk.letter);
      if (disjunction_after(t, a, tk.end)) disjunction = true;
    }
  }
  std::vector<LetterTok> mentions;
  for (size_t i = 0; i < t.size(); ++i) {
    LetterTok tk;
    if (!parse_letter(t, i, tk)) continue;
    if ((accept_mention(tk) || (tk.form == Form::Bare && is_upper(tk.raw))) &&
        std::regex_search(a.begin() + long(tk.end), a.end(), post_cue_re(), std::regex_constants::match_continuous))
      explicit_letters.insert(tk.letter);
    mentions.push_back(tk);
    i = tk.end - 1;
  }
  if (explicit_letters.empty()) {
    size_t b = 0;
    while (b < t.size() && is_space(t[b])) ++b;
    LetterTok tk;
    // Only as an answer format: the letter alone on its line, or followed by its own option text
    // ("B. a blue sphere"); "(A) is wrong and (C) ..." is a discussion (step 5).
    if (parse_letter(t, b, tk) && tk.form != Form::Bare && accept_mention(tk)) {
      size_t k = tk.end;
      while (k < t.size() && (t[k] == ' ' || t[k] == '\t')) ++k;
      size_t eol = k;
      while (eol < t.size() && t[eol] != '\n') ++eol;
      bool ok = k >= t.size() || t[k] == '\n';
      size_t idx = size_t(tk.letter - 'A');
      if (!ok && idx < option_texts.size()) {
        std::string rest = norm_words(to_utf8(t.substr(k, eol - k))), opt = norm_words(option_texts[idx]);
        ok = !opt.empty() && rest.compare(0, opt.size(), opt) == 0 && (rest.size() == opt.size() || rest[opt.size()] == ' ');
      }
      if (ok) explicit_letters.insert(tk.letter);
    }
  }
  if (disjunction || explicit_letters.size() > 1) return make(ChoiceKind::Ambiguous, 0, "ambiguous");
  if (explicit_letters.size() == 1) {
    char L = *explicit_letters.begin();
    if (!valid(L)) return make(ChoiceKind::None, 0, "out-of-range");
    return make(ChoiceKind::Letter, L, "letter");
  }
  // Step 4: refusals.
  if (refusal_in(scope, option_texts)) return make(ChoiceKind::Refusal, 0, "refusal");
  // Step 5: other standalone letters.
  std::set<char> mentioned;
  for (auto& tk : mentions)
    if (accept_mention(tk) && valid(tk.letter)) mentioned.insert(tk.letter);
  if (mentioned.size() == 1) return make(ChoiceKind::Letter, *mentioned.begin(), "letter-mention");
  if (mentioned.size() > 1) return make(ChoiceKind::Ambiguous, 0, "ambiguous");
  // Step 6: option text.
  return match_option_text(scope, option_texts);
}

bool is_refusal(const std::string& output) { return refusal_in(scope_of(output), {}); }

// ---- open answers -------------------------------------------------------------------------------

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

// Content of the brace group starting at s[open] == '{' (nested braces kept), or npos.
size_t brace_end(const std::string& s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return i;
  }
  return std::string::npos;
}

// \frac{a}{b} / \dfrac / \tfrac -> (a)/(b) written plainly as a/b; \text{x} and friends -> x.
std::string strip_latex(std::string s) {
  for (const char* f : {"\\dfrac", "\\tfrac", "\\frac"}) {
    for (size_t p = s.find(f); p != std::string::npos; p = s.find(f)) {
      size_t a0 = p + std::strlen(f);
      if (a0 >= s.size() || s[a0] != '{') break;
      size_t a1 = brace_end(s, a0);
      if (a1 == std::string::npos || a1 + 1 >= s.size() || s[a1 + 1] != '{') break;
      size_t b1 = brace_end(s, a1 + 1);
      if (b1 == std::string::npos) break;
      std::string num = s.substr(a0 + 1, a1 - a0 - 1), den = s.substr(a1 + 2, b1 - a1 - 2);
      s.replace(p, b1 + 1 - p, num + "/" + den);
    }
  }
  for (const char* f : {"\\text", "\\mathrm", "\\textbf", "\\mathbf", "\\operatorname", "\\mbox"}) {
    for (size_t p = s.find(f); p != std::string::npos; p = s.find(f, p)) {
      size_t a0 = p + std::strlen(f);
      if (a0 >= s.size() || s[a0] != '{') {
        p = a0;
        continue;
      }
      size_t a1 = brace_end(s, a0);
      if (a1 == std::string::npos) break;
      s = s.substr(0, p) + s.substr(a0 + 1, a1 - a0 - 1) + s.substr(a1 + 1);
    }
  }
  for (const char* f : {"\\left", "\\right", "\\displaystyle", "\\!", "\\,", "\\;", "\\quad", "$"}) replace_all(s, f, "");
  replace_all(s, "^\\circ", "");
  replace_all(s, "^{\\circ}", "");
  replace_all(s, "\xC2\xB0", "");  // °
  replace_all(s, "\\%", "%");
  return s;
}

std::string fmt_number(double v) {
  if (v == 0) v = 0;  // no "-0"
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

const std::regex& number_token_re() {
  static const std::regex re(R"([-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:/\d+)?%?)");
  return re;
}

}  // namespace

std::optional<double> parse_number(const std::string& in) {
  std::string s = trim(strip_latex(in));
  if (s.empty()) return std::nullopt;
  if (s.back() == '%') s = trim(s.substr(0, s.size() - 1));
  static const std::regex thousands(R"([-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?)");
  if (std::regex_match(s, thousands)) s.erase(std::remove(s.begin(), s.end(), ','), s.end());
  static const std::regex dec(R"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)");
  static const std::regex frac(R"(([-+]?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?))");
  std::smatch m;
  if (std::regex_match(s, dec)) return std::strtod(s.c_str(), nullptr);
  if (std::regex_match(s, m, frac)) {
    double d = std::strtod(m[2].str().c_str(), nullptr);
    if (d == 0) return std::nullopt;
    return std::strtod(m[1].str().c_str(), nullptr) / d;
  }
  return std::nullopt;
}

std::string extract_open(const std::string& output) {
  std::string s = scope_of(output);
  // The last \boxed{...}.
  auto bx = s.rfind("\\boxed{");
  if (bx != std::string::npos) {
    size_t e = brace_end(s, bx + 6);
    if (e != std::string::npos) return trim(s.substr(bx + 7, e - bx - 7));
  }
  // Text after the last answer cue, to the end of that line / sentence.
  static const std::regex cue(R"(answer\s*(?:is\b|:)\s*|答案\s*(?:是|为|：|:)\s*)", std::regex::icase);
  size_t from = std::string::npos;
  for (auto it = std::sregex_iterator(s.begin(), s.end(), cue); it != std::sregex_iterator(); ++it)
    from = size_t(it->position() + it->length());
  if (from != std::string::npos) {
    std::string rest = s.substr(from);
    size_t cut = rest.find('\n');
    for (size_t p = rest.find('.'); p != std::string::npos && p < cut; p = rest.find('.', p + 1))
      if (p + 1 >= rest.size() || rest[p + 1] == ' ' || rest[p + 1] == '\n') {  // not a decimal point
        cut = p;
        break;
      }
    std::string r = trim(rest.substr(0, cut));
    if (!r.empty()) return r;
  }
  return trim(s);
}

std::string normalize_open(const std::string& in) {
  std::string s = strip_latex(to_utf8(fold_chars(to_u32(in))));
  s = trim(s);
  while (!s.empty() && (s.back() == '.' || s.back() == '!' || s.back() == '?')) s.pop_back();
  if (auto v = parse_number(s)) return fmt_number(*v);
  s = lower_ascii(s);
  // thousands separators inside numbers
  static const std::regex thousands(R"((\d),(\d{3})\b)");
  for (int k = 0; k < 4; ++k) s = std::regex_replace(s, thousands, "$1$2");
  // Keep word characters, CJK, and . / - % only next to digits; everything else separates words.
  U u = to_u32(s);
  U kept;
  for (size_t i = 0; i < u.size(); ++i) {
    char32_t c = u[i];
    bool digit_prev = i > 0 && u[i - 1] >= '0' && u[i - 1] <= '9';
    bool digit_next = i + 1 < u.size() && u[i + 1] >= '0' && u[i + 1] <= '9';
    if (is_word(c) || c >= 0x2E80)
      kept.push_back(c);
    else if ((c == '.' || c == '/') && digit_prev && digit_next)
      kept.push_back(c);
    else if (c == '-' && digit_next && (i == 0 || !is_word(u[i - 1])))
      kept.push_back(c);
    else if (c == '%' && digit_prev)
      kept.push_back(c);
    else
      kept.push_back(' ');
  }
  static const char* numwords[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                                   "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                                   "eighteen", "nineteen", "twenty"};
  std::string out;
  std::string w;
  std::string all = to_utf8(kept) + " ";
  for (char ch : all) {
    if (ch != ' ') {
      w.push_back(ch);
      continue;
    }
    if (w.empty()) continue;
    if (w == "a" || w == "an" || w == "the") {
      w.clear();
      continue;
    }
    for (int k = 0; k <= 20; ++k)
      if (w == numwords[k]) w = std::to_string(k);
    if (auto v = parse_number(w)) w = fmt_number(*v);
    if (!out.empty()) out.push_back(' ');
    out += w;
    w.clear();
  }
  return out;
}

bool open_match(const std::string& predicted, const std::string& gold) {
  const std::string np = normalize_open(extract_open(predicted));
  const std::string ng = normalize_open(gold);
  if (ng.empty()) return false;
  if (np == ng) return true;
  if (auto gv = parse_number(ng)) {
    auto close = [&](double v) { return std::fabs(v - *gv) <= 1e-6 * std::max(1.0, std::fabs(*gv)); };
    if (auto pv = parse_number(np)) return close(*pv);
    std::set<std::string> nums;
    for (auto it = std::sregex_iterator(np.begin(), np.end(), number_token_re()); it != std::sregex_iterator(); ++it)
      if (auto v = parse_number(it->str())) nums.insert(fmt_number(*v));
    if (nums.size() == 1) return close(std::strtod(nums.begin()->c_str(), nullptr));
    return false;
  }
  if (ng == "yes" || ng == "no") {
    std::string first = np.substr(0, np.find(' '));
    return first == ng;
  }
  return false;
}

}  // namespace pvm::answers
