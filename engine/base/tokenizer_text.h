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

}  // namespace pvm::text
