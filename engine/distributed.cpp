#include "engine/distributed.h"

#include <cstdlib>
#include <map>

#include "engine/base/error.h"

#if defined(PVM_WITH_C10D)
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(PVM_WITH_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(PVM_WITH_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

namespace pvm::train {

namespace {
int env_int(const char* name, int def, int lo, int hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end || x < lo || x > hi)
    throw Error(std::string("environment variable ") + name + "=" + v + ": expected an integer in [" + std::to_string(lo) +
                ", " + std::to_string(hi) + "]");
  return (int)x;
}
}  // namespace

struct Distributed::Impl {
#if defined(PVM_WITH_C10D)
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> pg;
#endif
  torch::Device device{torch::kCPU};
};

bool Distributed::available() {
#if defined(PVM_WITH_C10D) && (defined(PVM_WITH_GLOO) || defined(PVM_WITH_NCCL))
  return true;
#else
  return false;
#endif
}

std::vector<std::string> Distributed::backends() {
  std::vector<std::string> b;
#if defined(PVM_WITH_C10D) && defined(PVM_WITH_GLOO)
  b.push_back("gloo");
#endif
#if defined(PVM_WITH_C10D) && defined(PVM_WITH_NCCL)
  b.push_back("nccl");
#endif
  return b;
}

std::unique_ptr<Distributed> Distributed::single() {
  std::unique_ptr<Distributed> d(new Distributed());
  d->impl_ = std::make_unique<Impl>();
  return d;
}

std::unique_ptr<Distributed> Distributed::from_env(const torch::Device& dev, int timeout_s) {
  const int world = env_int("WORLD_SIZE", 1, 1, 1 << 16);
  auto d = single();
  if (world == 1) return d;
  d->world_ = world;
  d->rank_ = env_int("RANK", -1, 0, world - 1);
  if (d->rank_ < 0) throw Error("environment variable RANK is required when WORLD_SIZE=" + std::to_string(world));
  d->local_rank_ = env_int("LOCAL_RANK", d->rank_, 0, 1 << 16);
  const char* addr = std::getenv("MASTER_ADDR");
  const int port = env_int("MASTER_PORT", 29500, 1, 65535);
  std::string host = addr && *addr ? addr : "127.0.0.1";
  d->impl_->device = dev;
#if defined(PVM_WITH_C10D)
  try {
    c10d::TCPStoreOptions o;
    o.port = (uint16_t)port;
    o.isServer = d->rank_ == 0;
    o.numWorkers = world;
    o.waitWorkers = true;
    o.timeout = std::chrono::seconds(timeout_s);
    d->impl_->store = c10::make_intrusive<c10d::TCPStore>(host, o);
    if (dev.is_cuda()) {
#if defined(PVM_WITH_NCCL)
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      d->impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(d->impl_->store, d->rank_, world, opts);
      d->backend_ = "nccl";
#else
      throw Error("this build has no NCCL backend (rebuild against a LibTorch with NCCL, or train on cpu)");
#endif
    } else {
#if defined(PVM_WITH_GLOO)
      auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::seconds(timeout_s));
      // Bind to the address that reaches the master (loopback for a single machine).
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
      opts->threads = 2;
      d->impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(d->impl_->store, d->rank_, world, opts);
      d->backend_ = "gloo";
#else
      throw Error("this build has no Gloo backend (c10d without USE_C10D_GLOO)");
#endif
    }
  } catch (const pvm::Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string m = e.what();
    auto nl = m.find('\n');
    throw Error("distributed init (rank " + std::to_string(d->rank_) + " of " + std::to_string(world) + ", MASTER_ADDR=" +
                host + ", MASTER_PORT=" + std::to_string(port) + "): " + m.substr(0, nl));
  }
  return d;
#else
  throw Error("WORLD_SIZE=" + std::to_string(world) + " but this build has no c10d (distributed) support");
#endif
}

Distributed::~Distributed() = default;

namespace {
// Group tensors by dtype, flatten each group into one buffer, run `op`, scatter back.
template <class Op>
void flat_apply(std::vector<torch::Tensor>& ts, const torch::Device& dev, Op op) {
  std::map<int, std::vector<size_t>> groups;
  for (size_t i = 0; i < ts.size(); ++i) groups[(int)ts[i].scalar_type()].push_back(i);
  for (auto& [dt, idx] : groups) {
    std::vector<torch::Tensor> flat;
    for (auto i : idx) flat.push_back(ts[i].detach().reshape({-1}).to(dev));
    auto buf = torch::cat(flat);
    op(buf);
    int64_t off = 0;
    torch::NoGradGuard ng;
    for (auto i : idx) {
      auto n = ts[i].numel();
      ts[i].detach().copy_(buf.narrow(0, off, n).view(ts[i].sizes()));
      off += n;
    }
  }
}
}  // namespace

void Distributed::all_reduce_sum(std::vector<torch::Tensor>& ts) {
  if (world_ == 1 || ts.empty()) return;
#if defined(PVM_WITH_C10D)
  flat_apply(ts, impl_->device, [&](torch::Tensor& buf) {
    std::vector<torch::Tensor> v{buf};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    impl_->pg->allreduce(v, o)->wait();
  });
#endif
}

void Distributed::broadcast(std::vector<torch::Tensor>& ts, int root) {
  if (world_ == 1 || ts.empty()) return;
#if defined(PVM_WITH_C10D)
  flat_apply(ts, impl_->device, [&](torch::Tensor& buf) {
    std::vector<torch::Tensor> v{buf};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    impl_->pg->broadcast(v, o)->wait();
  });
#endif
}

void Distributed::all_reduce_sum(std::vector<double>& xs) {
  if (world_ == 1 || xs.empty()) return;
  auto t = torch::tensor(xs, torch::TensorOptions().dtype(torch::kDouble));
  std::vector<torch::Tensor> v{t};
  all_reduce_sum(v);
  auto a = v[0].to(torch::kCPU);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = a[i].item<double>();
}

double Distributed::all_reduce_sum(double x) {
  std::vector<double> v{x};
  all_reduce_sum(v);
  return v[0];
}

bool Distributed::any(bool x) { return all_reduce_sum(x ? 1.0 : 0.0) > 0; }

void Distributed::barrier() {
  if (world_ == 1) return;
  // An all-reduce is a barrier on every backend (c10d's barrier() needs a device hint on NCCL).
  all_reduce_sum(0.0);
}

}  // namespace pvm::train
