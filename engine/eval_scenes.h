// The scenes world as an evaluation item source (engine/eval.h): item i is held-out scene
// scenes::scene_seed(seed, 1, i) (the held-out split of `pvm scenes --seed S`), described by the
// model greedily and graded against its truth, then asked `qa_per_scene` questions. The tally
// gives attribute accuracy by object position (the dilution curve), overall accuracy,
// hallucinated / missing objects and QA accuracy.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/base/scenes.h"
#include "engine/eval.h"

namespace pvm::eval {

struct ScenesSettings {
  uint64_t seed = 0;
  int64_t count = 200;
  scenes::SceneOptions scene;
  int64_t max_new_tokens = 768;
  int qa_per_scene = 2;
  int64_t qa_max_new_tokens = 96;
};

// Per-attribute counts show which attribute limits the accuracy (an unmatched object counts as
// wrong on every attribute, as in the overall accuracy).
struct PositionStats {
  long long objects = 0, matched = 0, attributes_total = 0, attributes_correct = 0;
  long long shape = 0, color = 0, size = 0, texture = 0, digit = 0;
  double accuracy() const { return attributes_total ? double(attributes_correct) / attributes_total : 0.0; }
  double rate(long long n) const { return objects ? double(n) / double(objects) : 0.0; }
  void add(const PositionStats& o);
  // (name, rate) of each attribute the scene options grade, in report order.
  std::vector<std::pair<std::string, double>> rates(const scenes::SceneOptions& opt) const;
  nlohmann::json attributes(const scenes::SceneOptions& opt) const;
};

struct ScenesTally {
  std::map<int, PositionStats> by_pos;  // 1-based object position in the description
  PositionStats overall;
  long long scenes = 0, hallucinated = 0, missing = 0, count_ok = 0, exact = 0, truncated = 0, gen_tokens = 0;
  long long invocations = 0;  // VisMem memories inserted in the descriptions
  double decode_ms = 0;       // decode time of the descriptions (gen_tokens of them)
  std::map<std::string, std::pair<long long, long long>> qa_by_kind;  // kind -> (correct, total)
  PositionStats first3() const;  // the first three positions: does the model see before dilution?
  long long qa_correct() const;
  long long qa_total() const;
};

class ScenesSource : public ItemSource {
 public:
  explicit ScenesSource(ScenesSettings s) : s_(std::move(s)) {}
  size_t size() const override { return size_t(s_.count); }
  std::string key(size_t i) const override { return std::to_string(i); }
  // Record: index, seed, objects, truth, generated, finish, tokens, invocations, decode_ms, grade, qa
  // (the --out line).
  std::optional<nlohmann::json> evaluate(size_t i, int run, const Ask& ask) override;

  const ScenesTally& tally() const { return t_; }
  // The report's numbers (the caller adds model, adapter and timing).
  nlohmann::json report() const;
  // Accuracy by object position, for plots (experiments/dilution).
  std::string by_position_csv() const;

 private:
  ScenesSettings s_;
  ScenesTally t_;
};

}  // namespace pvm::eval
