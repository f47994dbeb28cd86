#include "engine/tensor_io.h"

#include <cstring>

#include "engine/base/error.h"

namespace pvm {

torch::ScalarType to_torch_dtype(DType t) {
  switch (t) {
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::F64: return torch::kFloat64;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
  }
  throw Error("internal: unhandled safetensors dtype");
}

DType from_torch_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return DType::F32;
    case torch::kFloat16: return DType::F16;
    case torch::kBFloat16: return DType::BF16;
    case torch::kFloat64: return DType::F64;
    case torch::kInt64: return DType::I64;
    case torch::kInt32: return DType::I32;
    case torch::kInt16: return DType::I16;
    case torch::kInt8: return DType::I8;
    case torch::kUInt8: return DType::U8;
    case torch::kBool: return DType::BOOL;
    default: break;
  }
  throw Error(std::string("torch dtype ") + c10::toString(t) + " cannot be stored in safetensors");
}

namespace {

void check_view(const TensorView& v) {
  uint64_t need = 0;
  if (!tensor_nbytes(v.shape, v.dtype, &need) || v.numel() < 0)
    throw Error("tensor '" + v.name + "': invalid shape");
  if (need != v.nbytes)
    throw Error("tensor '" + v.name + "': view has " + std::to_string(v.nbytes) + " bytes, shape needs " +
                std::to_string(need));
  if (v.nbytes > 0 && !v.data) throw Error("tensor '" + v.name + "': view has no data");
}

bool bool_bytes_clean(const TensorView& v) {
  for (size_t i = 0; i < v.nbytes; ++i)
    if (v.data[i] > 1) return false;
  return true;
}

bool zero_copy_ok(const TensorView& v) {
  if (v.nbytes == 0) return false;  // nothing to share; a fresh empty tensor is simpler
  if (reinterpret_cast<uintptr_t>(v.data) % dtype_size(v.dtype) != 0) return false;
  if (v.dtype == DType::BOOL && !bool_bytes_clean(v)) return false;
  return true;
}

}  // namespace

torch::Tensor to_torch(const TensorView& v, bool copy) {
  check_view(v);
  auto opts = torch::TensorOptions().dtype(to_torch_dtype(v.dtype)).device(torch::kCPU);
  if (!copy && zero_copy_ok(v)) return torch::from_blob(const_cast<uint8_t*>(v.data), v.shape, opts);
  torch::Tensor t = torch::empty(v.shape, opts);
  if (v.nbytes == 0) return t;
  if (v.dtype == DType::BOOL) {
    auto* dst = static_cast<uint8_t*>(t.data_ptr());
    for (size_t i = 0; i < v.nbytes; ++i) dst[i] = v.data[i] != 0;
  } else {
    std::memcpy(t.data_ptr(), v.data, v.nbytes);
  }
  return t;
}

torch::Tensor to_torch_shared(const TensorView& v, std::shared_ptr<const void> owner) {
  check_view(v);
  if (!zero_copy_ok(v)) return to_torch(v, true);
  auto opts = torch::TensorOptions().dtype(to_torch_dtype(v.dtype)).device(torch::kCPU);
  return torch::from_blob(
      const_cast<uint8_t*>(v.data), v.shape, [owner](void*) mutable { owner.reset(); }, opts);
}

TensorView view_of(const torch::Tensor& t, const std::string& name) {
  if (!t.defined()) throw Error("tensor '" + name + "': undefined tensor");
  if (!t.device().is_cpu()) throw Error("tensor '" + name + "': not a CPU tensor (" + t.device().str() + ")");
  if (t.layout() != torch::kStrided) throw Error("tensor '" + name + "': not a dense (strided) tensor");
  if (!t.is_contiguous()) throw Error("tensor '" + name + "': not contiguous");
  TensorView v;
  v.name = name;
  try {
    v.dtype = from_torch_dtype(t.scalar_type());
  } catch (const Error& e) {
    throw Error("tensor '" + name + "': " + e.what());
  }
  v.shape = t.sizes().vec();
  v.nbytes = size_t(t.numel()) * dtype_size(v.dtype);
  v.data = v.nbytes ? static_cast<const uint8_t*>(t.data_ptr()) : nullptr;
  return v;
}

void save_tensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> keep;
  std::vector<TensorView> views;
  keep.reserve(tensors.size());
  views.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) throw file_error(path, "tensor '" + name + "': undefined tensor");
    torch::Tensor c;
    try {
      c = t.detach().to(torch::kCPU).contiguous();
    } catch (const std::exception& e) {
      std::string msg = e.what();
      throw file_error(path, "tensor '" + name + "': cannot move to CPU: " + msg.substr(0, msg.find('\n')));
    }
    if (c.layout() != torch::kStrided) throw file_error(path, "tensor '" + name + "': not a dense tensor");
    try {
      views.push_back(view_of(c, name));
    } catch (const Error& e) {
      throw file_error(path, e.what());
    }
    keep.push_back(std::move(c));
  }
  write_safetensors(path, views, metadata);
}

std::map<std::string, torch::Tensor> load_tensors(const std::string& path) {
  Checkpoint ck = Checkpoint::open(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& name : ck.names()) {
    const TensorView* v = ck.find(name);
    try {
      out[name] = to_torch(*v, true);
    } catch (const Error& e) {
      throw file_error(ck.shard_of(name)->path(), e.what());
    }
    ck.release(name);
  }
  return out;
}

}  // namespace pvm
