// Text helpers behind pvm::Tokenizer: UTF-8 repair, Unicode character classes for the hand-written
// pre-tokenizer regex, and NFC with a fast "already normalized" check. Torch-free.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pvm::text {

// ---- UTF-8 ----
// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool utf8_valid(std::string_view s);

// Replace every maximal invalid subsequence by U+FFFD, exactly as the WHATWG Encoding Standard's
// UTF-8 decoder (JS TextDecoder, fatal=false) and Rust's String::from_utf8_lossy do. A leading
// byte-order mark is kept. Valid input comes back unchanged.
std::string utf8_sanitize(std::string_view s);

// Decode one code point from well-formed UTF-8 at s[i]; advances i. (No validation: callers pass
// text that went through utf8_sanitize.)
inline uint32_t utf8_next(const char* s, size_t& i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s) + i;
  unsigned c = p[0];
  if (c < 0x80) {
    i += 1;
    return c;
  }
  if (c < 0xE0) {
    i += 2;
    return ((c & 0x1Fu) << 6) | (p[1] & 0x3Fu);
  }
  if (c < 0xF0) {
    i += 3;
    return ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
  }
  i += 4;
  return ((c & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
}

void utf8_append(std::string& out, uint32_t cp);

// ---- character classes (one byte per code point, table built once from utf8proc) ----
enum CharClass : uint8_t {
  kLetter = 1,      // \p{L}: Lu Ll Lt Lm Lo
  kNumber = 2,      // \p{N}: Nd Nl No
  kSpace = 4,       // \s: Unicode White_Space (what Oniguruma's \s matches for UTF-8 text)
  kCrLf = 8,        // \r or \n
  kNfcUnsafe = 16,  // NFC_Quick_Check is No or Maybe (or may be: the set is a safe superset)
  kMark = 32,       // canonical combining class != 0
};
uint8_t char_class(uint32_t cp);
// The whole table (0x110000 entries), for hot loops; built on first use (~30 ms).
const uint8_t* class_table();

// ---- normalization ----
// True when NFC(s) == s, decided without normalizing by the Unicode quick check (UAX #15): no
// code point flagged kNfcUnsafe and combining marks in canonical order. `s` must be valid UTF-8.
bool nfc_is_stable(std::string_view utf8);

// NFC (utf8proc: UTF8PROC_STABLE | UTF8PROC_COMPOSE). Only the stretches between normalization
// boundaries that fail the quick check are normalized; the rest is copied. Invalid input is
// repaired with utf8_sanitize first.
std::string nfc(std::string_view utf8);

// Same for valid UTF-8 without a copy when nothing changes: returns false and leaves `out`
// alone when `s` is already NFC, else writes NFC(s) to `out` and returns true.
bool nfc_if_needed(std::string_view utf8, std::string& out);

// ---- the Qwen2 pre-tokenizer, by hand (no regex engine) ----
// The Split regex of Qwen2/Qwen3 tokenizer.json files (after JSON unescaping): the one pattern
// pvm::Tokenizer accepts, and the one pvm tokenizer-train writes.
inline constexpr const char* kQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Case folding of the contraction branch (Oniguruma (?i)): ASCII upper case, and U+017F (LATIN
// SMALL LETTER LONG S) to 's'.
inline uint32_t fold_contraction(uint32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp == 0x17F) return 's';
  return cp;
}

// End of the Qwen2 pattern's match at code point p of cp[0, n) (cl: their classes from
// class_table()). Every code point matches some branch, so the result is > p. The branches are
// tried in the regex's order. pvm::Tokenizer and the tokenizer trainer both split with it.
inline size_t match_qwen2(const uint32_t* cp, const uint8_t* cl, size_t n, size_t p) {
  const uint8_t c = cl[p];
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (cp[p] == '\'' && p + 1 < n) {
    uint32_t a = fold_contraction(cp[p + 1]);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return p + 2;
    if (p + 2 < n && (a == 'r' || a == 'v' || a == 'l')) {
      uint32_t b = fold_contraction(cp[p + 2]);
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return p + 3;
    }
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c & kLetter) {
    size_t j = p + 1;
    while (j < n && (cl[j] & kLetter)) ++j;
    return j;
  }
  if (!(c & (kCrLf | kNumber)) && p + 1 < n && (cl[p + 1] & kLetter)) {
    size_t j = p + 2;
    while (j < n && (cl[j] & kLetter)) ++j;
    return j;
  }
  // \p{N}
  if (c & kNumber) return p + 1;
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  {
    size_t k = p;
    if (cp[p] == ' ' && p + 1 < n && !(cl[p + 1] & (kSpace | kLetter | kNumber))) k = p + 1;
    if (!(cl[k] & (kSpace | kLetter | kNumber))) {
      size_t j = k + 1;
      while (j < n && !(cl[j] & (kSpace | kLetter | kNumber))) ++j;
      while (j < n && (cl[j] & kCrLf)) ++j;
      return j;
    }
  }
  // cl[p] is White_Space here.
  size_t j = p, last_crlf = SIZE_MAX;
  while (j < n && (cl[j] & kSpace)) {
    if (cl[j] & kCrLf) last_crlf = j;
    ++j;
  }
  if (last_crlf != SIZE_MAX) return last_crlf + 1;  // \s*[\r\n]+ (backtracks to the last CR/LF)
  if (j == n) return j;                             // \s+(?!\S) at the end
  if (j - p >= 2) return j - 1;                     // \s+(?!\S): leave one space for the next word
  return j;                                         // \s+
}

}  // namespace pvm::text
