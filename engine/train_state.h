// trainer_state.json: what a checkpoint records about its run at that step (written by the
// trainer, read back on --resume). parse_trainer_state believes nothing unchecked: every field's
// type, and the format number (a newer one is refused), before the trainer compares the state with
// the run (schedule length, trainable set) and applies it.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace pvm::train {

// "pvm_trainer_state": the newest format this build writes and reads (absent: written before the
// number existed, read as 1).
inline constexpr int64_t kTrainerStateFormat = 1;

struct TrainerState {
  int64_t step = 0, optimizer_steps = 0;
  std::optional<int64_t> total_steps;
  nlohmann::json objective;  // the objective's own state (an object), checked by the objective
  int64_t metrics_bytes = 0;
  double elapsed_s = 0;
  std::optional<bool> pvm_only;
  std::optional<std::vector<std::string>> trainable;
  int world_size = 1;
};

// Throws pvm::Error "<path>: <problem>" naming the field.
TrainerState parse_trainer_state(const nlohmann::json& st, const std::string& path);

}  // namespace pvm::train
