#include "engine/train_state.h"

#include <algorithm>
#include <cmath>

#include "engine/base/error.h"
#include "engine/base/file_format.h"

namespace pvm::train {

using nlohmann::json;

TrainerState parse_trainer_state(const json& st, const std::string& sp) {
  if (!st.is_object()) throw file_error(sp, "not a trainer state (expected a JSON object)");
  check_file_format(st, "pvm_trainer_state", kTrainerStateFormat, sp, "trainer state");
  auto integer = [&](const char* key, bool required) -> std::optional<int64_t> {
    if (!st.contains(key)) {
      if (required) throw file_error(sp, std::string("missing \"") + key + "\" (not a trainer state written by pvm train?)");
      return std::nullopt;
    }
    const json& v = st[key];
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > (uint64_t)INT64_MAX) || v.get<int64_t>() < 0)
      throw file_error(sp, std::string("\"") + key + "\" must be a non-negative integer, got " + v.dump());
    return v.get<int64_t>();
  };
  TrainerState s;
  s.step = *integer("step", true);
  s.optimizer_steps = *integer("optimizer_steps", true);
  s.total_steps = integer("total_steps", false);
  if (s.optimizer_steps > s.step)
    throw file_error(sp, "optimizer_steps " + std::to_string(s.optimizer_steps) + " exceeds step " + std::to_string(s.step));
  if (!st.contains("objective") || !st["objective"].is_object()) throw file_error(sp, "missing \"objective\" state");
  s.objective = st["objective"];
  s.metrics_bytes = integer("metrics_bytes", false).value_or(0);
  if (st.contains("elapsed_s")) {
    const json& e = st["elapsed_s"];
    if (!(e.is_number() && std::isfinite(e.get<double>()) && e.get<double>() >= 0))
      throw file_error(sp, "\"elapsed_s\" must be a non-negative number");
    s.elapsed_s = e.get<double>();
  }
  if (st.contains("pvm_only")) {
    if (!st["pvm_only"].is_boolean()) throw file_error(sp, "\"pvm_only\" must be true or false, got " + st["pvm_only"].dump());
    s.pvm_only = st["pvm_only"].get<bool>();
  }
  if (st.contains("trainable")) {
    const json& tr = st["trainable"];
    if (!tr.is_array()) throw file_error(sp, "\"trainable\" must be a list of parameter names");
    std::vector<std::string> names;
    for (auto& n : tr) {
      if (!n.is_string()) throw file_error(sp, "\"trainable\" must be a list of parameter names, got " + n.dump());
      names.push_back(n.get<std::string>());
    }
    s.trainable = std::move(names);
  }
  if (auto w = integer("world_size", false)) s.world_size = int(std::min<int64_t>(std::max<int64_t>(*w, 1), 1 << 20));
  return s;
}

}  // namespace pvm::train
