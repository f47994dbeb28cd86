#include "engine/base/cli_args.h"

#include <cerrno>
#include <cmath>
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

long long Args::get_int(const std::string& n, long long def) const {
  if (!values_.count(n)) return def;
  std::string s = get(n);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end) throw Error("option " + n + ": not an integer: '" + s + "'");
  if (errno == ERANGE) throw Error("option " + n + ": integer out of range: '" + s + "'");
  return v;
}

}  // namespace pvm::cli
