// `pvm eval --task scenes`: describe held-out scenes with a model, grade each description against
// the ground truth, and report attribute accuracy by object position (the dilution curve), overall
// accuracy, hallucinated / missing objects and QA accuracy.
//
//   pvm eval --task scenes [--model DIR] [--pvm ADAPTER] [--no-pvm] [--count N] [--seed S]
//            [--objects MIN-MAX] [--textures] [--digits] [--max-new-tokens N] [--qa-per-scene K]
//            [--qa-max-new-tokens N] [--device D] [--dtype T] [--tokenizer FILE] [--json]
//            [--out FILE.jsonl] [--csv FILE.csv (accuracy by object position)] [--quiet]
//
// Scene i has seed scenes::scene_seed(S, 1, i): the held-out split of `pvm scenes --seed S`.
#pragma once
#include <string>
#include <vector>

namespace pvm::cli {

// argv excludes "pvm eval"; it may contain "--task scenes". Returns the exit code.
int run_scenes_eval(const std::vector<std::string>& argv);

}  // namespace pvm::cli
