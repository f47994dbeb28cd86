// Benchmark files for `pvm eval` (torch-free): VLMEvalKit TSVs (MMBench, MMStar, AI2D, SEED, ...)
// and JSONL files of open-answer questions, plus the prompts those harnesses build.
//
// TSV (as VLMEvalKit writes and reads them with pandas, sep='\t', QUOTE_MINIMAL): a header row, then
// one row per question; a field holding a tab, a quote or a line break is wrapped in "..." with
// inner quotes doubled, so a row may span several physical lines (messages give the line the row
// starts on). Columns: index, image (base64, or the index of another row whose image it shares; a
// "['b64', 'b64']" list for several images), image_path (used when there is no image column;
// relative paths are taken from the TSV's folder), question, hint, A..Z options, answer, category,
// l2-category (or l2_category), split. Empty cells and pandas' default NA strings ("nan", "NaN",
// "NA", "N/A", "NULL", "None", "null", "#N/A", ...) are missing, as pandas reads them; so an option
// written "None" is dropped, as VLMEvalKit drops it. Rows without an image are skipped (VLMEvalKit's
// skip_noimg) and counted. A column whose every present cell is a number prints the way pandas
// stores it (an integer column without gaps as "3", otherwise a float column: "3.0", "0.5").
//
// JSONL (open answers): one object per line, {"question": str, "image": path | "images": [paths],
// "answer": str|number, "category"?: str, "id"?: str|number}; paths relative to the JSONL's folder.
//
// Errors are pvm::Error "<file>:<line>: <problem>".
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/base/base64.h"

namespace pvm::eval {

struct ImageRef {
  std::shared_ptr<const std::string> base64;  // shared by rows pointing at the same image
  std::string path;                           // when the item gives a file instead
  std::string name;                           // for messages: "<file>:<line> image k"
};

struct EvalItem {
  std::string key;  // the TSV's index, the JSONL's id, or "line N"
  std::string question;
  std::string hint;
  bool has_hint = false;
  std::vector<std::pair<char, std::string>> options;  // letter, text; present options only, in order
  std::string answer;  // a letter (MCQ) or the gold text (open)
  std::string category, l2_category, split;
  std::vector<ImageRef> images;
  bool open = false;  // an open-answer item (JSONL)
  int line = 0;       // first line of the row in the file (1-based)

  // option_texts for answers::extract_choice: index 0 = 'A' up to the last present option
  // (a gap letter gets "").
  std::vector<std::string> option_texts() const;
};

struct EvalData {
  std::string path;
  std::vector<EvalItem> items;
  int skipped_no_image = 0;
};

EvalData load_eval_data(const std::string& path);  // .tsv or .jsonl (.json lines)
EvalData load_vlmeval_tsv(const std::string& path);
EvalData load_open_jsonl(const std::string& path);
// Same readers on text in memory; `where` names the file and `dir` resolves relative paths.
EvalData parse_vlmeval_tsv(const std::string& text, const std::string& where, const std::string& dir);
EvalData parse_open_jsonl(const std::string& text, const std::string& where, const std::string& dir,
                          bool check_files = true);

// pandas-style TSV records: fields unquoted; row_lines[k] is the physical line record k starts on.
std::vector<std::vector<std::string>> parse_tsv_records(const std::string& text, const std::string& where,
                                                        std::vector<int>* row_lines);
// Writes one TSV field the way pandas' to_csv(sep='\t') quotes it.
std::string tsv_quote(const std::string& field);
bool pandas_na(const std::string& cell);
// Python's repr() of a float ("3.0", "0.1", "1e-05", "1e+16").
std::string python_float_repr(double v);

// Images in TSVs are base64 (engine/base/base64.h).
using pvm::base64_decode;
using pvm::base64_encode;

enum class PromptStyle {
  Dataset,  // VLMEvalKit's ImageMCQDataset / ImageBaseDataset.build_prompt (any model)
  Qwen3VL,  // VLMEvalKit's Qwen3VLPromptMixin (what VLMEvalKit uses for Qwen3-VL by default)
};
PromptStyle parse_prompt_style(const std::string& s);  // "dataset" | "qwen3vl"
const char* prompt_style_name(PromptStyle s);
std::string build_prompt(const EvalItem& item, PromptStyle style);

}  // namespace pvm::eval
