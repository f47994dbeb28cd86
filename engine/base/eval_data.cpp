#include "engine/base/eval_data.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"

namespace pvm::eval {

namespace {

Error line_error(const std::string& where, int line, const std::string& what) {
  return Error(where + ":" + std::to_string(line) + ": " + what);
}

std::string resolve(const std::string& dir, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return join_path(dir, p);
}

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c + 32);
  return s;
}

// Python-literal list of strings "['a', "b"]" (what VLMEvalKit's toliststr evaluates), or one string.
std::vector<std::string> list_or_one(const std::string& cell, const std::string& where, int line) {
  if (cell.size() < 2 || cell.front() != '[' || cell.back() != ']') return {cell};
  std::vector<std::string> out;
  size_t i = 1, n = cell.size() - 1;
  while (i < n) {
    while (i < n && (cell[i] == ' ' || cell[i] == ',' || cell[i] == '\n')) ++i;
    if (i >= n) break;
    char q = cell[i];
    if (q != '\'' && q != '"') throw line_error(where, line, "cannot read the list cell (expected quoted strings): " + cell.substr(0, 60));
    size_t e = cell.find(q, i + 1);
    if (e == std::string::npos || e >= n) throw line_error(where, line, "unterminated string in list cell");
    out.push_back(cell.substr(i + 1, e - i - 1));
    i = e + 1;
  }
  if (out.empty()) throw line_error(where, line, "empty list cell");
  return out;
}

const std::regex& int_re() {
  static const std::regex re(R"([+-]?\d+)");
  return re;
}
const std::regex& float_re() {
  static const std::regex re(R"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|Inf|INF|infinity|Infinity))");
  return re;
}

}  // namespace

bool pandas_na(const std::string& c) {
  static const std::set<std::string> na = {"",     "#N/A", "#N/A N/A", "#NA",  "-1.#IND", "-1.#QNAN", "-NaN",
                                           "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",   "NA",     "NULL",
                                           "NaN",  "None", "n/a",      "nan",  "null"};
  return na.count(c) > 0;
}

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: scientific when exp < -4 or exp >= 16.
  char buf[64];
  int prec = 1;
  for (; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;  // d.ddde[+-]XX
  auto epos = s.find('e');
  int exp = std::atoi(s.c_str() + epos + 1);
  std::string mant = s.substr(0, epos);
  bool neg = mant[0] == '-';
  if (neg) mant = mant.substr(1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits.push_back(c);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out;
  if (exp < -4 || exp >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += e;
  } else if (exp < 0) {
    out = "0." + std::string(size_t(-exp - 1), '0') + digits;
  } else {
    if (digits.size() <= size_t(exp) + 1) {
      out = digits + std::string(size_t(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, size_t(exp) + 1) + "." + digits.substr(size_t(exp) + 1);
    }
  }
  return neg ? "-" + out : out;
}

std::string tsv_quote(const std::string& f) {
  if (f.find_first_of("\t\"\n\r") == std::string::npos) return f;
  std::string o = "\"";
  for (char c : f) {
    if (c == '"') o += "\"\"";
    else o.push_back(c);
  }
  return o + "\"";
}

std::vector<std::vector<std::string>> parse_tsv_records(const std::string& text, const std::string& where,
                                                        std::vector<int>* row_lines) {
  std::vector<std::vector<std::string>> rows;
  size_t i = 0, n = text.size();
  if (n >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 BOM
  int line = 1;
  while (i < n) {
    // Blank lines are skipped (pandas skip_blank_lines).
    if (text[i] == '\n' || text[i] == '\r') {
      if (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
      ++i;
      ++line;
      continue;
    }
    const int start_line = line;
    std::vector<std::string> rec;
    std::string field;
    bool end_row = false;
    while (!end_row) {
      field.clear();
      if (i < n && text[i] == '"') {
        const int qline = line;
        ++i;
        for (;;) {
          if (i >= n) throw line_error(where, qline, "quoted field never closed (missing '\"')");
          char c = text[i];
          if (c == '"') {
            if (i + 1 < n && text[i + 1] == '"') {
              field.push_back('"');
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (c == '\n') ++line;
          if (c == '\r' && !(i + 1 < n && text[i + 1] == '\n')) ++line;
          field.push_back(c);
          ++i;
        }
      }
      // Unquoted text (or what follows a closing quote, which pandas appends to the field).
      while (i < n && text[i] != '\t' && text[i] != '\n' && text[i] != '\r') field.push_back(text[i++]);
      rec.push_back(field);
      if (i >= n) {
        end_row = true;
      } else if (text[i] == '\t') {
        ++i;
      } else {
        if (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
        ++i;
        ++line;
        end_row = true;
      }
    }
    rows.push_back(std::move(rec));
    if (row_lines) row_lines->push_back(start_line);
  }
  return rows;
}

std::vector<std::string> EvalItem::option_texts() const {
  std::vector<std::string> t;
  for (auto& [L, text] : options) {
    size_t k = size_t(L - 'A');
    if (t.size() <= k) t.resize(k + 1);
    t[k] = text;
  }
  return t;
}

EvalData parse_vlmeval_tsv(const std::string& text, const std::string& where, const std::string& dir) {
  std::vector<int> lines;
  auto rows = parse_tsv_records(text, where, &lines);
  if (rows.empty()) throw Error(where + ": empty file (no header row)");
  const auto& header = rows[0];
  std::map<std::string, size_t> col;
  for (size_t c = 0; c < header.size(); ++c) {
    if (col.count(header[c])) throw line_error(where, lines[0], "column '" + header[c] + "' appears twice");
    col[header[c]] = c;
  }
  for (const char* need : {"index", "question", "answer"})
    if (!col.count(need)) throw line_error(where, lines[0], std::string("no '") + need + "' column");
  for (size_t r = 1; r < rows.size(); ++r)
    if (rows[r].size() != header.size())
      throw line_error(where, lines[r], "row has " + std::to_string(rows[r].size()) + " fields, the header has " +
                                            std::to_string(header.size()));
  const bool has_image = col.count("image") > 0, has_path = col.count("image_path") > 0;
  if (!has_image && !has_path) throw line_error(where, lines[0], "neither an 'image' nor an 'image_path' column");

  // Cell text as pandas would hand it to VLMEvalKit: NA -> missing; numeric columns formatted.
  std::vector<int> numeric(header.size(), 0);  // 0 text, 1 int, 2 float
  for (size_t c = 0; c < header.size(); ++c) {
    if (header[c] == "image") continue;
    bool all_num = true, all_int = true, any_na = false, any = false;
    for (size_t r = 1; r < rows.size() && all_num; ++r) {
      const auto& v = rows[r][c];
      if (pandas_na(v)) {
        any_na = true;
        continue;
      }
      any = true;
      if (std::regex_match(v, int_re())) {
        errno = 0;
        std::strtoll(v.c_str(), nullptr, 10);
        if (errno == ERANGE) all_int = false;
      } else if (std::regex_match(v, float_re())) {
        all_int = false;
      } else {
        all_num = false;
      }
    }
    if (all_num && any) numeric[c] = (all_int && !any_na) ? 1 : 2;
  }
  auto cell = [&](size_t r, const char* name, bool& present) -> std::string {
    present = false;
    auto it = col.find(name);
    if (it == col.end()) return "";
    const std::string& v = rows[r][it->second];
    if (pandas_na(v)) return "";
    present = true;
    if (numeric[it->second] == 1) return std::to_string(std::strtoll(v.c_str(), nullptr, 10));
    if (numeric[it->second] == 2) return python_float_repr(std::strtod(v.c_str(), nullptr));
    return v;
  };

  EvalData d;
  std::map<std::string, size_t> row_of_index;
  std::vector<std::string> index_of(rows.size());
  for (size_t r = 1; r < rows.size(); ++r) {
    bool p;
    index_of[r] = cell(r, "index", p);
    if (!p) throw line_error(where, lines[r], "empty index");
    if (row_of_index.count(index_of[r])) throw line_error(where, lines[r], "index " + index_of[r] + " appears twice");
    row_of_index[index_of[r]] = r;
  }
  std::map<size_t, std::shared_ptr<const std::string>> shared;  // row -> its base64 text
  for (size_t r = 1; r < rows.size(); ++r) {
    EvalItem it;
    it.line = lines[r];
    it.key = index_of[r];
    bool p;
    const std::string img = has_image ? cell(r, "image", p) : "";
    if (has_image && img.empty()) {
      ++d.skipped_no_image;  // VLMEvalKit drops rows without an image (skip_noimg)
      continue;
    }
    const std::string loc = where + ":" + std::to_string(lines[r]);
    if (has_image) {
      std::string src = img;
      size_t src_row = r;
      if (img.size() <= 64) {  // the index of the row that holds the image
        auto f = row_of_index.find(img);
        if (f == row_of_index.end())
          throw line_error(where, lines[r], "image '" + img + "' is neither base64 data nor the index of another row");
        src_row = f->second;
        bool q;
        src = cell(src_row, "image", q);
        if (src.size() <= 64)
          throw line_error(where, lines[r], "image points to index " + img + " whose image is itself a pointer or empty");
      }
      auto parts = list_or_one(src, where, lines[r]);
      std::vector<std::string> names;
      if (parts.size() > 1 && has_path) names = list_or_one(cell(r, "image_path", p), where, lines[r]);
      for (size_t k = 0; k < parts.size(); ++k) {
        ImageRef ref;
        if (parts.size() == 1) {
          auto& sp = shared[src_row];
          if (!sp) sp = std::make_shared<const std::string>(parts[0]);
          ref.base64 = sp;
        } else {
          ref.base64 = std::make_shared<const std::string>(parts[k]);
        }
        ref.name = loc + " image " + std::to_string(k + 1) + (k < names.size() ? " (" + names[k] + ")" : "");
        it.images.push_back(std::move(ref));
      }
    } else {
      std::string paths = cell(r, "image_path", p);
      if (!p) throw line_error(where, lines[r], "empty image_path");
      for (auto& pth : list_or_one(paths, where, lines[r])) {
        ImageRef ref;
        ref.path = resolve(dir, pth);
        ref.name = loc + " image " + pth;
        it.images.push_back(std::move(ref));
      }
    }
    it.question = cell(r, "question", p);
    if (!p) throw line_error(where, lines[r], "empty question");
    it.hint = cell(r, "hint", it.has_hint);
    for (char L = 'A'; L <= 'Z'; ++L) {
      const std::string name(1, L);
      std::string v = cell(r, name.c_str(), p);
      if (p) it.options.push_back({L, v});
    }
    it.answer = cell(r, "answer", p);
    if (!p) throw line_error(where, lines[r], "empty answer");
    it.category = cell(r, "category", p);
    it.l2_category = cell(r, "l2-category", p);
    if (!p) it.l2_category = cell(r, "l2_category", p);
    it.split = cell(r, "split", p);
    if (!it.options.empty()) {
      bool ok = it.answer.size() == 1;
      if (ok) {
        ok = false;
        for (auto& o : it.options) ok |= o.first == it.answer[0];
      }
      if (!ok) {
        std::string letters;
        for (auto& o : it.options) letters += o.first;
        throw line_error(where, lines[r], "answer '" + it.answer + "' is not one of the options " + letters);
      }
    } else if (!(it.answer.size() == 1 && it.answer[0] >= 'A' && it.answer[0] <= 'Z')) {
      it.open = true;  // a VQA-style row: free-form gold answer
    }
    d.items.push_back(std::move(it));
  }
  return d;
}

EvalData parse_open_jsonl(const std::string& text, const std::string& where, const std::string& dir, bool check_files) {
  EvalData d;
  std::set<std::string> keys;
  size_t pos = 0;
  int line = 0;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    std::string ln = text.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
    pos = e == std::string::npos ? text.size() : e + 1;
    ++line;
    if (!ln.empty() && ln.back() == '\r') ln.pop_back();
    if (ln.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(ln);
    } catch (const std::exception& ex) {
      std::string m = ex.what();
      throw line_error(where, line, "bad JSON: " + m.substr(0, m.find('\n')));
    }
    if (!j.is_object()) throw line_error(where, line, "expected a JSON object");
    EvalItem it;
    it.open = true;
    it.line = line;
    if (!j.contains("question") || !j["question"].is_string()) throw line_error(where, line, "\"question\" must be a string");
    it.question = j["question"].get<std::string>();
    if (!j.contains("answer")) throw line_error(where, line, "no \"answer\"");
    const auto& ans = j["answer"];
    if (ans.is_string())
      it.answer = ans.get<std::string>();
    else if (ans.is_number())
      it.answer = ans.dump();
    else
      throw line_error(where, line, "\"answer\" must be a string or a number");
    if (it.answer.empty()) throw line_error(where, line, "empty \"answer\"");
    if (j.contains("category")) {
      if (!j["category"].is_string()) throw line_error(where, line, "\"category\" must be a string");
      it.category = j["category"].get<std::string>();
    }
    std::string key = "line " + std::to_string(line);
    for (const char* k : {"id", "index"})
      if (j.contains(k)) {
        if (j[k].is_string()) key = j[k].get<std::string>();
        else if (j[k].is_number_integer()) key = j[k].dump();
        else throw line_error(where, line, std::string("\"") + k + "\" must be a string or an integer");
        break;
      }
    if (!keys.insert(key).second) throw line_error(where, line, "id '" + key + "' appears twice");
    it.key = key;
    std::vector<std::string> paths;
    if (j.contains("image")) {
      if (!j["image"].is_string()) throw line_error(where, line, "\"image\" must be a string (a path)");
      paths.push_back(j["image"].get<std::string>());
    }
    if (j.contains("images")) {
      if (!j["images"].is_array()) throw line_error(where, line, "\"images\" must be an array of paths");
      for (auto& p : j["images"]) {
        if (!p.is_string()) throw line_error(where, line, "\"images\" must be an array of paths");
        paths.push_back(p.get<std::string>());
      }
    }
    for (auto& p : paths) {
      ImageRef ref;
      ref.path = resolve(dir, p);
      ref.name = where + ":" + std::to_string(line) + " image " + p;
      if (check_files && !is_regular_file(ref.path)) throw line_error(where, line, "image '" + p + "' not found (" + ref.path + ")");
      it.images.push_back(std::move(ref));
    }
    d.items.push_back(std::move(it));
  }
  if (d.items.empty()) throw Error(where + ": no items");
  return d;
}

EvalData load_vlmeval_tsv(const std::string& path) {
  auto d = parse_vlmeval_tsv(read_file_to_string(path, uint64_t(16) << 30), path, parent_dir(path));
  d.path = path;
  return d;
}

EvalData load_open_jsonl(const std::string& path) {
  auto d = parse_open_jsonl(read_file_to_string(path), path, parent_dir(path));
  d.path = path;
  return d;
}

EvalData load_eval_data(const std::string& path) {
  std::string l = lower(path);
  auto ends = [&](const char* s) { return l.size() >= std::strlen(s) && l.compare(l.size() - std::strlen(s), std::string::npos, s) == 0; };
  if (ends(".tsv")) return load_vlmeval_tsv(path);
  if (ends(".jsonl")) return load_open_jsonl(path);
  throw Error(path + ": unknown data format (expected a VLMEvalKit .tsv or a .jsonl of open answers)");
}

PromptStyle parse_prompt_style(const std::string& s) {
  if (s == "dataset") return PromptStyle::Dataset;
  if (s == "qwen3vl") return PromptStyle::Qwen3VL;
  throw Error("--prompt-style must be 'dataset' or 'qwen3vl', not '" + s + "'");
}

const char* prompt_style_name(PromptStyle s) { return s == PromptStyle::Dataset ? "dataset" : "qwen3vl"; }

namespace {
std::string py_rstrip(std::string s) {
  while (!s.empty() && std::strchr(" \t\n\r\v\f", s.back())) s.pop_back();
  return s;
}
}  // namespace

// VLMEvalKit (open-compass/VLMEvalKit):
//  * vlmeval/dataset/image_mcq.py, ImageMCQDataset.build_prompt: "Hint: {hint}\n" (when present),
//    "Question: {question}\n", and with options "Options:\n" + "{L}. {text}\n" per option +
//    "Please select the correct answer from the options above. \n" (trailing space kept).
//  * vlmeval/dataset/image_base.py, ImageBaseDataset.build_prompt (open questions): the question.
//  * vlmeval/vlm/qwen3_vl/prompt.py, Qwen3VLPromptMixin (on by default for Qwen3-VL): MCQ as above
//    but ending "Answer with the option letter only." and rstrip()'ed; VQA: question +
//    "\nPlease answer concisely with short words or phrases when possible."
// Images always come first, then this text, in one user turn.
std::string build_prompt(const EvalItem& it, PromptStyle style) {
  if (it.open) {
    if (style == PromptStyle::Qwen3VL) return it.question + "\nPlease answer concisely with short words or phrases when possible.";
    return it.question;
  }
  std::string p;
  if (it.has_hint) p += "Hint: " + it.hint + "\n";
  p += "Question: " + it.question + "\n";
  if (!it.options.empty()) {
    p += "Options:\n";
    for (auto& [L, text] : it.options) p += std::string(1, L) + ". " + text + "\n";
    p += style == PromptStyle::Dataset ? "Please select the correct answer from the options above. \n"
                                       : "Answer with the option letter only.";
  }
  return style == PromptStyle::Qwen3VL ? py_rstrip(p) : p;
}

}  // namespace pvm::eval
