#include "engine/base/tokenizer_text.h"

#include <utf8proc.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace pvm::text {

// ---------------------------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------------------------

namespace {

// Length of the valid sequence starting at p[0] (p < end), or 0 if p[0] starts an invalid one.
inline size_t valid_seq_len(const unsigned char* p, const unsigned char* end) {
  unsigned c = p[0];
  if (c < 0x80) return 1;
  size_t avail = static_cast<size_t>(end - p);
  if (c >= 0xC2 && c <= 0xDF) return (avail >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (avail < 3) return 0;
    unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return (p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (avail < 4) return 0;
    unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return (p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80) ? 4 : 0;
  }
  return 0;
}

}  // namespace

bool utf8_valid(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    // 8 ASCII bytes at a time.
    while (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if (w & 0x8080808080808080ull) break;
      p += 8;
    }
    if (p >= end) break;
    size_t n = valid_seq_len(p, end);
    if (n == 0) return false;
    p += n;
  }
  return true;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// The WHATWG UTF-8 decoder (https://encoding.spec.whatwg.org/#utf-8-decoder), error mode
// "replacement": a byte that cannot continue the current sequence ends it with one U+FFFD and is
// then looked at again as the start of a new sequence.
std::string utf8_sanitize(std::string_view s) {
  if (utf8_valid(s)) return std::string(s);
  static const char kRepl[] = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size() + 16);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      out.append(kRepl, 3);  // a byte that can never start a sequence
      ++i;
      continue;
    }
    size_t j = i + 1, seen = 0;
    bool ok = true;
    while (seen < need) {
      if (j >= n) {
        ok = false;  // end of input inside a sequence
        break;
      }
      unsigned b = p[j];
      if (b < lo || b > hi) {
        ok = false;  // b is not consumed: it starts the next round
        break;
      }
      lo = 0x80;
      hi = 0xBF;
      ++j;
      ++seen;
    }
    if (ok) {
      out.append(reinterpret_cast<const char*>(p + i), j - i);
    } else {
      out.append(kRepl, 3);
    }
    i = j;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Character class table
// ---------------------------------------------------------------------------------------------

namespace {

constexpr uint32_t kMaxCp = 0x110000;

bool is_white_space(uint32_t cp) {
  // Unicode PropList White_Space (unchanged since Unicode 6.3).
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

std::string nfc_raw(const char* s, size_t n) {
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s),
                                      static_cast<utf8proc_ssize_t>(n), &out,
                                      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (len < 0) {
    std::free(out);
    return std::string(s, n);  // cannot happen for sanitized input
  }
  std::string r(reinterpret_cast<const char*>(out), static_cast<size_t>(len));
  std::free(out);
  return r;
}

std::vector<uint8_t> build_table() {
  std::vector<uint8_t> t(kMaxCp, 0);
  std::vector<uint32_t> seconds;       // code points that may be the second half of a composition
  std::vector<std::pair<uint32_t, uint32_t>> first_of;  // (cp, first code point of its decomposition)
  utf8proc_int32_t dec[32];
  for (uint32_t cp = 0; cp < kMaxCp; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    if (cp >= 0x40000 && cp < 0xE0000) continue;  // planes 4-13: unassigned in every version
    uint8_t f = 0;
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
      case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
      case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        f |= kLetter;
        break;
      case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        f |= kNumber;
        break;
      default:
        break;
    }
    if (is_white_space(cp)) f |= kSpace;
    if (cp == '\r' || cp == '\n') f |= kCrLf;
    if (utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class != 0) f |= kMark;
    bool hangul_syllable = cp >= 0xAC00 && cp <= 0xD7A3;  // algorithmic; NFC keeps them
    if (!hangul_syllable) {
      int bc = 0;
      utf8proc_ssize_t k = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), dec, 32,
                                                   UTF8PROC_DECOMPOSE, &bc);
      if (k > 1 || (k == 1 && static_cast<uint32_t>(dec[0]) != cp)) {
        std::string one;
        utf8_append(one, cp);
        if (nfc_raw(one.data(), one.size()) != one) f |= kNfcUnsafe;
        for (utf8proc_ssize_t j = 1; j < k; ++j) seconds.push_back(static_cast<uint32_t>(dec[j]));
        first_of.emplace_back(cp, static_cast<uint32_t>(dec[0]));
      }
    }
    t[cp] = f;
  }
  // Hangul vowel and trailing jamo compose with a preceding L jamo / LV syllable.
  for (uint32_t cp = 0x1161; cp <= 0x1175; ++cp) t[cp] |= kNfcUnsafe;
  for (uint32_t cp = 0x11A8; cp <= 0x11C2; ++cp) t[cp] |= kNfcUnsafe;
  std::vector<bool> is_second(kMaxCp, false);
  for (uint32_t cp : seconds) {
    t[cp] |= kNfcUnsafe;
    is_second[cp] = true;
  }
  // A composite whose decomposition starts with a possible second half could join its left
  // neighbour after decomposition.
  for (auto& [cp, first] : first_of)
    if (is_second[first]) t[cp] |= kNfcUnsafe;
  return t;
}

const uint8_t* table() {
  static const std::vector<uint8_t> t = build_table();
  return t.data();
}

}  // namespace

const uint8_t* class_table() { return table(); }

uint8_t char_class(uint32_t cp) { return cp < kMaxCp ? table()[cp] : 0; }

namespace {

// Walk `s` in normalization segments: each segment starts at a code point that is a composition
// boundary (combining class 0 and quick check Yes) or at the start of `s`. `on_segment(begin,
// end, dirty)` gets byte offsets; a segment is dirty when it holds a kNfcUnsafe code point or
// combining marks out of canonical order. Returns whether any segment was dirty.
template <class F>
bool for_each_segment(std::string_view s, F&& on_segment) {
  const uint8_t* t = table();
  const char* d = s.data();
  size_t seg = 0, i = 0, n = s.size();
  bool dirty = false, any = false;
  unsigned last_ccc = 0;
  while (i < n) {
    size_t start = i;
    uint8_t c;
    uint32_t cp;
    if (static_cast<unsigned char>(d[i]) < 0x80) {
      cp = static_cast<unsigned char>(d[i]);
      ++i;
      c = 0;  // ASCII: boundary, never unsafe
    } else {
      cp = utf8_next(d, i);
      c = t[cp];
    }
    if (!(c & (kNfcUnsafe | kMark))) {  // boundary before this code point
      if (start > seg) on_segment(seg, start, dirty);
      any |= dirty;
      seg = start;
      dirty = false;
      last_ccc = 0;
      continue;
    }
    if (c & kNfcUnsafe) dirty = true;
    if (c & kMark) {
      unsigned ccc = static_cast<unsigned>(utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class);
      if (ccc < last_ccc) dirty = true;
      last_ccc = ccc;
    } else {
      last_ccc = 0;
    }
  }
  if (n > seg) on_segment(seg, n, dirty);
  return any || dirty;
}

}  // namespace

bool nfc_is_stable(std::string_view s) {
  return !for_each_segment(s, [](size_t, size_t, bool) {});
}

bool nfc_if_needed(std::string_view s, std::string& out) {
  if (!nfc_is_stable(s)) {
    out.clear();
    out.reserve(s.size() + 8);
    for_each_segment(s, [&](size_t b, size_t e, bool dirty) {
      if (dirty)
        out += nfc_raw(s.data() + b, e - b);
      else
        out.append(s.data() + b, e - b);
    });
    return true;
  }
  return false;
}

std::string nfc(std::string_view s) {
  std::string fixed, out;
  if (!utf8_valid(s)) {
    fixed = utf8_sanitize(s);
    s = fixed;
  }
  if (nfc_if_needed(s, out)) return out;
  return std::string(s);
}

}  // namespace pvm::text
