// RFC 4648 base64, standard alphabet: images inside benchmark TSVs (engine/base/eval_data.h) and
// exact binary arrays inside the GRPO trainer's JSON state (engine/train_grpo.cpp).
#pragma once
#include <cstddef>
#include <string>

namespace pvm {

// Decoding skips whitespace, accepts missing padding, and throws pvm::Error "<where>: ..." on any
// other character, data after '=' padding or a truncated quantum.
std::string base64_decode(const std::string& s, const std::string& where);
std::string base64_encode(const void* data, size_t n);
inline std::string base64_encode(const std::string& bytes) { return base64_encode(bytes.data(), bytes.size()); }

}  // namespace pvm
