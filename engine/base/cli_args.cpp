#include "engine/base/cli_args.h"

#include <cerrno>
#include <cmath>
#include <cctype>
#include <cstdlib>

namespace pvm::cli {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& options,
           const std::set<std::string>& flags) {
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || a == "--") {
      positional_.push_back(a);
      continue;
    }
    std::string value;
    bool has_value = false;
    auto eq = a.find('=');
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_value = true;
    }
    if (flags.count(a)) {
      if (has_value) throw Error("option " + a + " takes no value");
      flags_set_.insert(a);
    } else if (options.count(a)) {
      if (!has_value) {
        if (i + 1 >= argv.size()) throw Error("option " + a + " needs a value");
        value = argv[++i];
      }
      values_[a].push_back(value);
    } else {
      throw Error("unknown option " + a);
    }
  }
}

bool Args::has(const std::string& n) const { return flags_set_.count(n) || values_.count(n); }

std::string Args::get(const std::string& n, const std::string& def) const {
  auto it = values_.find(n);
  return it == values_.end() ? def : it->second.back();
}

std::string Args::require(const std::string& n) const {
  auto it = values_.find(n);
  if (it == values_.end()) throw Error("missing required option " + n);
  return it->second.back();
}

std::vector<std::string> Args::all(const std::string& n) const {
  auto it = values_.find(n);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

double Args::get_double(const std::string& n, double def) const {
  if (!values_.count(n)) return def;
  std::string s = get(n);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end) throw Error("option " + n + ": not a number: '" + s + "'");
  // nan / inf parse as numbers but no option means anything by them (nan would compare false
  // against every bound and slip through, e.g. --temperature nan ran greedy).
  if (errno == ERANGE || !std::isfinite(v)) throw Error("option " + n + ": not a finite number: '" + s + "'");
  return v;
}

long long parse_int(const std::string& s, const std::string& what, long long lo, long long hi) {
  auto bounds = [&] { return " (must be in " + std::to_string(lo) + ".." + std::to_string(hi) + ")"; };
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;  // strtoll skips leading blanks; say so consistently
  const bool digits = i < s.size() && (std::isdigit((unsigned char)s[i]) ||
                                       ((s[i] == '-' || s[i] == '+') && i + 1 < s.size() && std::isdigit((unsigned char)s[i + 1])));
  char* end = nullptr;
  errno = 0;
  long long v = digits ? std::strtoll(s.c_str(), &end, 10) : 0;
  if (!digits || *end) throw Error(what + ": not an integer: '" + s + "'");
  // Beyond 64 bits is a number too, just not one any option takes: out of range, not "not an integer".
  if (errno == ERANGE || v < lo || v > hi) throw Error(what + ": out of range: '" + s + "'" + bounds());
  return v;
}

std::vector<long long> parse_int_list(const std::string& text, const std::string& what, long long lo, long long hi) {
  std::vector<long long> out;
  size_t p = 0;
  while (true) {
    size_t q = text.find(',', p);
    std::string item = text.substr(p, q == std::string::npos ? std::string::npos : q - p);
    if (item.empty()) throw Error(what + ": not a comma-separated list of integers: '" + text + "'");
    out.push_back(parse_int(item, what, lo, hi));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  return out;
}

long long Args::get_int(const std::string& n, long long def, long long lo, long long hi) const {
  if (!values_.count(n)) return def;
  return parse_int(get(n), "option " + n, lo, hi);
}

}  // namespace pvm::cli
