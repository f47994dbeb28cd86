// Bridge between the torch-free safetensors reader/writer (engine/base/safetensors.h) and torch.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/base/safetensors.h"
#include "engine/torch_pch.h"

namespace pvm {

torch::ScalarType to_torch_dtype(DType t);
// Throws pvm::Error for torch dtypes safetensors cannot hold here (complex, quantized, ...).
DType from_torch_dtype(torch::ScalarType t);

// CPU tensor with the view's dtype and shape.
//  copy=true : a fresh tensor owning its memory (BOOL bytes are normalized to 0/1).
//  copy=false: torch::from_blob over the view's bytes with NO ownership. The tensor is only valid
//              while the SafetensorsFile/Checkpoint (or caller buffer) that owns the view lives, and
//              it must be treated as read-only: the mapping is PROT_READ, so an in-place write
//              crashes. Use to_torch_shared to tie the lifetime to the file instead. (A BOOL view
//              holding bytes other than 0/1, or a view whose data is not aligned to its element
//              size, is copied anyway.)
torch::Tensor to_torch(const TensorView& v, bool copy = true);
// Zero-copy, read-only tensor that keeps `owner` (the file) alive for as long as the tensor's
// storage lives.
torch::Tensor to_torch_shared(const TensorView& v, std::shared_ptr<const void> owner);

// View of a defined, contiguous CPU tensor (throws pvm::Error otherwise). The view points into the
// tensor's storage: keep the tensor alive while the view is used.
TensorView view_of(const torch::Tensor& t, const std::string& name);

// Detaches, moves to CPU, makes contiguous, and writes atomically (see write_safetensors).
void save_tensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata = {});

// Copies every tensor of a checkpoint (file, index.json or directory; see Checkpoint::open) into
// owning CPU tensors, releasing each tensor's mapped pages after the copy.
std::map<std::string, torch::Tensor> load_tensors(const std::string& path);

}  // namespace pvm
