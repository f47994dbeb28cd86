// Data-parallel process group over LibTorch c10d: Gloo on CPU, NCCL on CUDA (when the LibTorch
// build has it), configured by the environment variables torchrun sets: RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT (rendezvous through a c10d TCPStore hosted by rank 0).
// Without WORLD_SIZE (or WORLD_SIZE=1) everything is a no-op on one process.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/torch_pch.h"

namespace pvm::train {

class Distributed {
 public:
  // Reads the env vars; world 1 when WORLD_SIZE is unset. Errors (bad values, no rendezvous within
  // `timeout_s`, no c10d in this build) are pvm::Error naming the variable or the problem.
  static std::unique_ptr<Distributed> from_env(const torch::Device& dev, int timeout_s = 300);
  static std::unique_ptr<Distributed> single();  // world 1
  ~Distributed();

  int rank() const { return rank_; }
  int world() const { return world_; }
  int local_rank() const { return local_rank_; }
  bool is_main() const { return rank_ == 0; }
  std::string backend() const { return backend_; }  // "none" | "gloo" | "nccl"

  // In-place collectives over all ranks (no-ops when world == 1). Tensors must have the same
  // shapes/dtypes on every rank. Several tensors are flattened into one buffer per dtype.
  void all_reduce_sum(std::vector<torch::Tensor>& ts);
  void broadcast(std::vector<torch::Tensor>& ts, int root = 0);
  double all_reduce_sum(double x);
  void all_reduce_sum(std::vector<double>& xs);
  void barrier();
  // True on every rank if it is true on any rank (e.g. a stop request seen by one process).
  bool any(bool x);

  // Whether this build can run world > 1 (c10d linked and Gloo compiled in).
  static bool available();
  // The c10d backends compiled into this build ("gloo", "nccl").
  static std::vector<std::string> backends();

 private:
  Distributed() = default;
  int rank_ = 0, world_ = 1, local_rank_ = 0;
  std::string backend_ = "none";
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pvm::train
