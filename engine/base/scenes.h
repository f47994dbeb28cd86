// The "scenes" world: procedural images of simple objects on a 4x4 grid, their ground truth, long
// "blind painter" descriptions in a fixed grammar, question/answer items with exact answers, and a
// grader that parses a generated description back and scores it object by object.
//
// Designed to be learnable by a tiny Qwen3-VL (patch 16, 2x2 merge: a 256x256 image is 8x8 = 64
// visual tokens, so each 64-px grid cell is 2x2 visual tokens):
//  * objects sit in distinct cells of a 4x4 grid, jittered inside their cell but never crossing its
//    border (so no object ever occludes another);
//  * 8 well-separated colours on a dark grey background, 6 shapes, 2 sizes, optional texture
//    (solid / striped / dotted) and optional digit (5x7 glyph drawn on the object);
//  * anti-aliased by 4x4 supersampling, with all geometry in integer 1/8-pixel units and our own
//    PRNG (splitmix64), so pixels and JSON are identical on every platform for a given seed.
//
// Description grammar (one line; objects in reading order, i.e. row-major by cell):
//   The image shows N objects on a dark gray background, in a grid of 4 rows and 4 columns.
//   Object K is in the ROW row, COL column, a SIZE COLOR [TEXTURE] SHAPE[ with the digit D][, REL the
//   SIZE COLOR SHAPE].
// ROW: top|second|third|bottom, COL: first|second|third|fourth, REL: left of|right of|above|below
// (the nearest other object by cell distance, ties to the earlier one in reading order).
// TEXTURE is stated (also "solid") exactly when the scene's options enable textures, the digit
// exactly when they enable digits. describe() and parse_description() are exact inverses.
#pragma once
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace pvm::scenes {

inline constexpr int kGrid = 4;  // rows = columns = 4

struct SceneOptions {
  int width = 256, height = 256, min_objects = 4, max_objects = 16;
  bool textures = false, digits = false;
  // Throws pvm::Error "<where>: ..." for sizes outside 64..4096 or object counts outside 1..16.
  void validate(const std::string& where) const;
};

struct Object {
  std::string shape, color, size, texture;  // texture "solid" when textures are off
  int digit = -1;                           // 0..9 when digits are on, else -1
  int row = 0, col = 0;                     // grid cell, 0..3
  float cx = 0, cy = 0, radius = 0;         // pixels (exact multiples of 1/8)
};

struct Scene {
  uint64_t seed = 0;
  SceneOptions options;
  std::vector<Object> objects;  // in description order (reading order: row-major by cell)
};

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // RGB8, row-major, height * width * 3
};

// kind: count | color_at | relation | kth_attribute. `reasoning` is the short text the SFT target
// puts inside <think>..</think>.
struct QAItem {
  std::string kind, question, answer, reasoning;
};

// Closed vocabularies (index order is the PRNG's order).
const std::vector<std::string>& shape_names();    // circle square triangle diamond star cross
const std::vector<std::string>& color_names();    // red orange yellow green cyan blue purple white
const std::vector<std::string>& size_names();     // small large
const std::vector<std::string>& texture_names();  // solid striped dotted
std::array<uint8_t, 3> color_rgb(const std::string& color);  // throws pvm::Error if unknown
std::array<uint8_t, 3> background_rgb();

// Seed of the index-th scene of a split (0 = train, 1 = held-out) of a data set made with `base`.
// A bijective mix of (base, 2*index + split), so the two splits never share a seed. `pvm scenes
// --seed S --heldout N` and `pvm eval --task scenes --seed S --count N` use the same held-out seeds.
uint64_t scene_seed(uint64_t base, int split, uint64_t index);

// Seed of the QA items of a scene (the data set writer and the evaluator ask the same questions).
uint64_t qa_seed(uint64_t scene_seed);

Scene generate(uint64_t seed, const SceneOptions& opt = {});
Image render(const Scene& scene);

std::string describe(const Scene& scene);
std::string describe_prompt();            // the user instruction for descriptions (training and eval)
std::string answer_format_instruction();  // appended to QA questions
std::string qa_prompt(const QAItem& q);   // question + " " + answer_format_instruction()
std::string qa_completion(const QAItem& q);  // "<think>reasoning</think><answer>answer</answer>"
// The answer in a generated QA completion: the text of the first <answer>..</answer> if there is
// one, else the bare text; lower-cased, trimmed, one trailing '.' dropped.
std::string extract_answer(const std::string& generated);
bool answer_correct(const std::string& generated, const std::string& truth);

// n items, deterministic by (scene, seed); kinds cycle through the four in an order drawn from seed.
std::vector<QAItem> questions(const Scene& scene, uint64_t seed, int n);

nlohmann::json to_json(const Scene& scene);
// Strict: unknown names, cells out of range or repeated, bad types are pvm::Error "<where>: ...".
// Objects are put in reading order.
Scene from_json(const nlohmann::json& j, const std::string& where);

// ---- grading ----
struct ObjectGrade {
  int position = 0;        // 1-based position of the true object in description (reading) order
  int row = 0, col = 0;
  bool matched = false;    // some sentence of the generated text claimed this object's cell
  int sentence = -1;       // index of that sentence among the generated object sentences
  int attributes_total = 0, attributes_correct = 0;  // shape, color, size [, texture] [, digit]
  bool shape_ok = false, color_ok = false, size_ok = false, texture_ok = false, digit_ok = false;
  bool relation_ok = false;  // the relation clause equals the true one (not part of the accuracy)
  std::string said;          // the attribute words the model wrote for it
};

struct Grade {
  std::vector<ObjectGrade> objects;  // one per true object, in description order
  int hallucinated = 0;              // sentences claiming an empty cell or an already described one
  int missing = 0;                   // true objects never described
  int unparsed_sentences = 0;        // sentences without a recognisable cell
  int attributes_total = 0, attributes_correct = 0;
  double accuracy = 0;               // attributes_correct / attributes_total (missing objects count 0)
  bool count_stated = false, count_ok = false;  // "The image shows N objects" present / right
  nlohmann::json to_json() const;
};

// Never throws on any text (garbage grades 0).
Grade grade(const Scene& truth, const std::string& description);

// Exact inverse of describe(): the scene (cells and attributes; seed, cx, cy, radius are 0) whose
// description is exactly `text` under `opt` (its textures / digits flags), or nullopt.
std::optional<Scene> parse_description(const std::string& text, const SceneOptions& opt = {});

// "--objects MIN-MAX" or "--objects N": sets opt.min_objects / max_objects; pvm::Error naming the
// option for anything else or a range outside 1..16.
void parse_objects_option(const std::string& value, SceneOptions& opt, const std::string& option = "--objects");

// Words of a text as the grader splits it (lower case words, digits runs, '.' and ',' tokens);
// exposed for length statistics.
std::vector<std::string> words(const std::string& text);

}  // namespace pvm::scenes
