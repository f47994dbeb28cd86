#include "app/studio/session.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>

#include <ATen/Parallel.h>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/proc.h"
#include "engine/device.h"
#include "engine/dilution.h"
#include "engine/image.h"
#include "engine/memory_estimate.h"
#include "engine/pipeline.h"
#include "engine/probes.h"
#include "engine/pvm.h"
#include "engine/vismem.h"
#include "engine/base/log_sink.h"

namespace pvm::studio {
namespace {

using Clock = std::chrono::steady_clock;

// U+FFFD at the end: the token stream stopped inside a UTF-8 character.
bool ends_incomplete(const std::string& s) {
  return s.size() >= 3 && (unsigned char)s[s.size() - 3] == 0xEF && (unsigned char)s[s.size() - 2] == 0xBF &&
         (unsigned char)s[s.size() - 1] == 0xBD;
}

// Alternates the sides' generations on one model token by token, in turn: a side holds the baton
// from its forward pass until its on_token, then hands it to the next active side. Forward passes
// never overlap, so the shared modules are never used by two threads at once.
class Baton {
 public:
  explicit Baton(const std::vector<int>& sides) {
    for (int s : sides) active_[s] = true;
    turn_ = sides.empty() ? 0 : sides[0];
  }
  void acquire(int me) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return turn_ == me || !others(me); });
  }
  void pass(int me) {
    std::unique_lock<std::mutex> l(mu_);
    if (!others(me)) return;
    turn_ = next(me);
    cv_.notify_all();
    cv_.wait(l, [&] { return turn_ == me || !others(me); });
  }
  void finish(int me) {
    std::lock_guard<std::mutex> l(mu_);
    active_[me] = false;
    if (turn_ == me) turn_ = next(me);
    cv_.notify_all();
  }

 private:
  bool others(int me) const {
    for (int k = 0; k < kSides; ++k)
      if (k != me && active_[k]) return true;
    return false;
  }
  int next(int me) const {
    for (int d = 1; d < kSides; ++d)
      if (active_[(me + d) % kSides]) return (me + d) % kSides;
    return me;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  int turn_ = 0;
  bool active_[kSides] = {};
};

}  // namespace

std::unique_ptr<Pipeline> random_demo_pipeline(const std::string& device, const std::string& dtype) {
  // No trained default model yet: a random model of the tiny preset with two PVM layers, built in
  // memory (deterministic, nothing to clean up). Gates are set to 0.5 so PVM changes the answer.
  const torch::Device dev = parse_device(device);
  const auto dt = parse_dtype(dtype, dev);
  ModelConfig c = preset_config("qwen3-vl-tiny");
  auto m = make_random_model(c, 0, dt, dev);
  TextConfig pf = c.text;
  pf.pvm_layers = {1, 3};
  pf.pvm_hidden_size = 64;
  attach_pvm(*m, pf, 1);
  {
    torch::NoGradGuard ng;
    for (auto& layer : m->model->language_model->layer_list)
      if (layer->pvm_block) layer->pvm_block->gate_alpha.fill_(0.5);
  }
  auto tp = default_tokenizer_path();
  if (!path_exists(tp)) throw file_error(tp, "tokenizer.json not found (the Qwen3 tokenizer is committed in assets/tokenizers/qwen3/; restore it with git)");
  auto p = std::make_unique<Pipeline>(Tokenizer::load(tp));
  p->tokenizer_path = tp;
  p->model.config = m->config();
  p->model.model = m;
  p->model.dir = kRandomModel;
  return p;
}

Session::Session(int model_threads) {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  threads_given_ = model_threads > 0;
  model_threads_ = model_threads > 0 ? model_threads : std::max(1, cores - 1);
  PreprocessorConfig d;
  proc_ = {d.patch_size, d.merge_size, d.min_pixels, d.max_pixels};
  worker_ = std::thread([this] { worker_loop(); });
}

Session::~Session() {
  cancel_ = true;
  {
    std::lock_guard<std::mutex> l(qmu_);
    quit_ = true;
    queue_.clear();
  }
  qcv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

bool Session::post(const char* what, std::function<void()> job, std::string* why) {
  std::lock_guard<std::mutex> l(qmu_);
  if (busy_.load() || !queue_.empty()) {
    if (why) *why = std::string("busy: ") + what + " waits until the current job ends (Stop cancels a generation)";
    return false;
  }
  busy_ = true;  // set here, so busy() is true from the moment a request is accepted
  queue_.push_back(std::move(job));
  qcv_.notify_all();
  return true;
}

void Session::worker_loop() {
  // Global for ATen (threads started later, such as the interleaved baseline side, take it too).
  at::set_num_threads(model_threads_);
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> l(qmu_);
      qcv_.wait(l, [&] { return quit_ || !queue_.empty(); });
      if (quit_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    cancel_ = false;
    // Every job reports its own errors; this is the last line of defence so the UI never dies.
    try {
      job();
    } catch (const std::exception& e) {
      std::string m = e.what();  // one line: library errors (c10) carry a backtrace after it
      fail(m.substr(0, m.find('\n')));
    } catch (...) {
      fail("unknown error in the engine worker");
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      ++sh_.status.jobs_done;
    }
    {
      std::lock_guard<std::mutex> l(qmu_);
      busy_ = !queue_.empty();
    }
    idle_cv_.notify_all();
  }
}

void Session::wait_idle() {
  std::unique_lock<std::mutex> l(qmu_);
  idle_cv_.wait(l, [&] { return !busy_.load() && queue_.empty(); });
}

void Session::set_status(EngineStatus::State st, const std::string& msg, float progress) {
  std::lock_guard<std::mutex> l(mu_);
  sh_.status.state = st;
  sh_.status.message = msg;
  sh_.status.progress = progress;
}

void Session::fail(const std::string& msg) {
  log_error("%s", msg.c_str());
  std::lock_guard<std::mutex> l(mu_);
  sh_.status.state = EngineStatus::Idle;
  sh_.status.message = "error: " + msg;
  sh_.status.error = msg;
  sh_.status.progress = -1;
  for (auto& s : sh_.side)
    if (s.running) s.running = false, s.finish = "error";
}

// ---- requests (UI thread) ----

// A folder's marker file (config.json, adapter_config.json) must be a regular file. Checked with
// stat, never by opening it: opening a FIFO would block the UI thread until a writer appears.
static bool has_regular_file(const std::string& dir, const char* name, const char* what, std::string* why) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    if (why) *why = dir + (std::filesystem::exists(dir, ec) ? ": is a file, expected a folder holding " + std::string(name)
                                                            : ": no such folder (expected " + std::string(what) + " holding " + name + ")");
    return false;
  }
  auto st = std::filesystem::status(dir + "/" + name, ec);
  if (!std::filesystem::exists(st)) {
    if (why) *why = dir + ": no " + name + " in this folder (not " + what + ")";
    return false;
  }
  if (!std::filesystem::is_regular_file(st)) {
    if (why) *why = dir + "/" + name + ": not a regular file";
    return false;
  }
  return true;
}

bool Session::load_model(const LoadRequest& r, std::string* why) {
  if (r.dir.size() && r.dir != kRandomModel && !has_regular_file(r.dir, "config.json", "a model checkpoint", why))
    return false;
  return post("loading", [this, r] { do_load(r); }, why);
}

bool Session::load_adapter(const std::string& dir, std::string* why) {
  if (dir.size() && !has_regular_file(dir, "adapter_config.json", "a PVM adapter", why)) return false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!sh_.model.loaded) {
      if (why) *why = "load a model before an adapter";
      return false;
    }
  }
  return post("the adapter", [this, dir] { do_load_adapter(dir); }, why);
}

bool Session::load_vismem(const std::string& dir, std::string* why) {
  if (dir.size() && !has_regular_file(dir, "adapter_config.json", "a VisMem adapter", why)) return false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!sh_.model.loaded) {
      if (why) *why = "load a model before a VisMem adapter";
      return false;
    }
  }
  return post("the VisMem adapter", [this, dir] { do_load_vismem(dir); }, why);
}

bool Session::inspect_model(const LoadRequest& r, std::string* why) {
  if (r.dir.empty() || r.dir == kRandomModel) {
    if (why) *why = "inspect: name a checkpoint folder";
    return false;
  }
  if (!has_regular_file(r.dir, "config.json", "a Qwen3-VL checkpoint", why)) {
    std::lock_guard<std::mutex> l(mu_);
    sh_.plan = LoadPlan{};
    sh_.plan.dir = r.dir;
    sh_.plan.error = why ? *why : "not a checkpoint";
    return false;
  }
  return post("inspecting the checkpoint", [this, r] { do_inspect(r); }, why);
}

bool Session::run_batch(const BatchSettings& b, std::string* why) {
  auto bad = [&](const std::string& m) {
    if (why) *why = "batch: " + m;
    return false;
  };
  if (b.max_new_tokens < 2 || b.max_new_tokens > 16384) return bad("max new tokens must be in 2..16384");
  if (b.images.empty() && (b.scenes < 1 || b.scenes > 10000)) return bad("the number of scenes must be in 1..10000");
  if (b.images.empty() && (b.min_objects < 1 || b.max_objects > 16 || b.min_objects > b.max_objects))
    return bad("objects must be a range within 1..16");
  if (b.scene_seed < 0) return bad("the seed must be >= 0");
  if (b.out_dir.empty()) return bad("choose an output folder");
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!sh_.model.loaded) return bad("no model loaded (Model view: Load)");
  }
  const uint64_t id = ++batches_;
  return post("the batch", [this, b, id] { do_batch(b, id); }, why);
}

namespace {
SamplingParams to_sampling_params(const SamplingSettings& ss) {
  SamplingParams sp;
  sp.do_sample = ss.temperature > 0;
  sp.temperature = ss.temperature > 0 ? ss.temperature : 1.0;
  sp.top_p = ss.top_p;
  sp.top_k = ss.top_k;
  sp.min_p = ss.min_p;
  sp.repetition_penalty = ss.repetition_penalty;
  sp.seed = uint64_t(ss.seed);
  return sp;
}
}  // namespace

bool Session::generate(const GenerateSettings& s, std::string* why) {
  auto bad = [&](const std::string& m) {
    if (why) *why = m;
    return false;
  };
  if (s.max_new_tokens < 1 || s.max_new_tokens > 16384) return bad("max new tokens must be in 1..16384");
  if (!s.baseline && !s.pvm && !s.vismem) return bad("pick at least one of baseline, PVM and VisMem");
  if (s.vismem_invoke != "model" && s.vismem_invoke != "separators")
    return bad("VisMem invocation must be model or separators, got '" + s.vismem_invoke + "'");
  if (!(s.vismem_p >= 0 && s.vismem_p <= 1)) return bad("VisMem invocation probability must be in [0, 1]");
  if (s.vismem_max < 0 || s.vismem_max > (1 << 20)) return bad("VisMem invocations must be in 0..1048576");
  if (s.prompt.empty()) return bad("the prompt is empty");
  // The same checks as the CLI (NaN / inf / out of range), before anything is posted to the worker.
  if (!(s.sampling.temperature >= 0)) return bad("temperature must be >= 0 (0 = greedy)");
  // The interventions: the CLI's ranges (app/cli/command.h visual_intervention).
  if (!(s.visual_scale > 0 && s.visual_scale <= 1e6)) return bad("image attention scale must be in (0, 1e6]");
  if (!(s.visual_restore >= -4 && s.visual_restore <= 4)) return bad("image attention restore must be in [-4, 4]");
  if (s.history_window < 0 || s.history_window > (1 << 20)) return bad("history window must be in 0..1048576");
  if (s.image.valid()) {
    try {
      check_image_size(s.image.width, s.image.height, s.image.source.empty() ? "image" : s.image.source);
    } catch (const Error& e) {
      return bad(e.what());
    }
  }
  try {
    to_sampling_params(s.sampling).validate();
  } catch (const Error& e) {
    return bad(e.what());
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!sh_.model.loaded) return bad("no model loaded (Model view: Load)");
  }
  uint64_t id;
  {
    std::lock_guard<std::mutex> l(mu_);
    id = sh_.run_id + 1;
  }
  return post("generation", [this, s, id] { do_generate(s, id); }, why);
}

void Session::stop() {
  if (busy_.load()) {
    cancel_ = true;
    log_info("stop requested");
  }
}

// ---- worker jobs ----

void Session::do_load(const LoadRequest& r) {
  const auto t0 = Clock::now();
  std::string dir = r.dir.empty() ? pvm::default_model_dir() : r.dir == kRandomModel ? "" : r.dir;
  set_status(EngineStatus::Loading, "loading " + (dir.empty() ? std::string("random demo model") : dir) + " ...", 0);
  pipe_.reset();  // free the old model first: two 8B models do not fit
  {
    std::lock_guard<std::mutex> l(mu_);
    sh_.model = ModelInfo{};
    sh_.status.error.clear();
  }
  LoadOptions lo;
  lo.device = parse_device(r.device);
  lo.dtype = parse_dtype(r.dtype, lo.device);
  {
    std::lock_guard<std::mutex> l(mu_);
    sh_.load = LoadProgress{};
    sh_.load.dir = dir.empty() ? kRandomModel : dir;
    sh_.load.state = "loading";
  }
  lo.cancel = &cancel_;
  const std::string shown = dir.empty() ? std::string("random demo model") : dir;
  lo.progress = [this, t0, r, shown](int64_t done, int64_t total, const std::string&) {
    const float f = total > 0 ? float(double(done) / double(total)) : -1.0f;
    if (r.cancel_at >= 0 && f >= r.cancel_at) cancel_ = true;  // scripted runs: as if Cancel were pressed
    std::lock_guard<std::mutex> l(mu_);
    sh_.status.progress = f;
    sh_.load.fraction = std::max(0.0f, f);
    sh_.load.done_bytes = done, sh_.load.total_bytes = total;
    sh_.load.elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double rate = sh_.load.elapsed_s > 0 ? double(done) / sh_.load.elapsed_s : 0;
    char msg[512];
    std::snprintf(msg, sizeof msg, "loading %s: %.0f%% (%.2f of %.2f GB, %.0f MB/s, ETA %.0f s)", shown.c_str(),
                  100.0 * std::max(0.0f, f), done / 1e9, total / 1e9, rate / 1e6,
                  rate > 0 ? double(total - done) / rate : 0.0);
    sh_.status.message = msg;
  };
  std::string note;
  std::unique_ptr<Pipeline> p;
  try {
    if (dir.empty()) {
      p = random_demo_pipeline(r.device, r.dtype);
      note = r.dir == kRandomModel ? "random qwen3-vl-tiny (words are noise, PVM gates 0.5)"
                                   : "no default model in assets/default-model: random qwen3-vl-tiny (words are "
                                     "noise, PVM gates 0.5)";
      log_warn("%s", note.c_str());
    } else {
      p = std::make_unique<Pipeline>(Pipeline::open(dir, lo));
    }
  } catch (const LoadCancelled& c) {
    char msg[512];
    std::snprintf(msg, sizeof msg, "loading cancelled at %.0f%% (%.2f of %.2f GB read): no model loaded (%s)",
                  c.total_bytes > 0 ? 100.0 * double(c.done_bytes) / double(c.total_bytes) : 0.0, c.done_bytes / 1e9,
                  c.total_bytes / 1e9, dir.c_str());
    log_warn("%s", msg);
    {
      std::lock_guard<std::mutex> l(mu_);
      sh_.load.state = "cancelled";
      sh_.load.done_bytes = c.done_bytes, sh_.load.total_bytes = c.total_bytes;
      sh_.load.fraction = c.total_bytes > 0 ? float(double(c.done_bytes) / double(c.total_bytes)) : 0.0f;
    }
    set_status(EngineStatus::Idle, msg);
    return;
  } catch (...) {
    std::lock_guard<std::mutex> l(mu_);
    sh_.load.state = "failed";
    throw;
  }
  // The default model comes with its PVM adapter, so baseline and PVM can be compared at once.
  std::string adapter = r.adapter;
  if (adapter.empty() && r.dir.empty() && !dir.empty()) {
    std::error_code ec;
    auto d = std::filesystem::path(dir).parent_path() / "default-pvm";  // assets/default-pvm
    if (std::filesystem::exists(d / "adapter_config.json", ec)) adapter = d.string();
  }
  if (!adapter.empty()) load_pvm_adapter(*p->model.model, adapter);
  // A VisMem adapter that does not load leaves the model loaded without it (the error is reported
  // once the model is in place).
  std::string vismem_error;
  if (!r.vismem.empty()) {
    try {
      load_vismem_adapter(*p->model.model, r.vismem);
    } catch (const std::exception& e) {
      const std::string m = e.what();
      vismem_error = m.substr(0, m.find('\n'));
      detach_vismem(*p->model.model);
    }
  }
  // A small decoder runs best on one thread (pipeline.h default_cpu_threads); a large one on every
  // core, as the CLI: its decode is memory-bound and one thread cannot draw the bandwidth (2B on
  // 2 cores: 1 thread 0.52 of the CLI's tokens/s, all cores with the UI streaming at 10 fps 0.87;
  // experiments/bench/RESULTS_studio.md). The UI then draws less often while it streams
  // (StudioApp::streaming_fps), and wakes at once on input.
  if (!threads_given_ && lo.device.is_cpu()) {
    model_threads_ = default_cpu_threads(p->model.config);
    at::set_num_threads(model_threads_);
  }
  pipe_ = std::move(p);
  {
    std::lock_guard<std::mutex> l(mu_);
    const auto& pp = pipe_->preprocessor;
    proc_ = {pp.patch_size, pp.merge_size, pp.min_pixels, pp.max_pixels};
    sh_.model.adapter = adapter;
    sh_.model.vismem = vismem_error.empty() ? r.vismem : "";
    sh_.model.note = note;
    sh_.model.device = lo.device.str();
    sh_.model.dtype = dtype_name(lo.dtype);
    sh_.load.state = "loaded";
    sh_.load.fraction = 1;
    sh_.load.elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  refresh_model_info();
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  char msg[512];
  std::snprintf(msg, sizeof msg, "model loaded: %s (%.1f s)%s", pipe_->model.dir.c_str(), s,
                note.empty() ? "" : " - random weights, see the Model view");
  log_info("%s", msg);
  set_status(EngineStatus::Idle, msg);
  if (!vismem_error.empty()) fail(vismem_error);
}

void Session::do_load_adapter(const std::string& dir) {
  if (!pipe_) throw Error("no model loaded");
  set_status(EngineStatus::Loading, dir.empty() ? "removing PVM blocks" : "loading adapter " + dir + " ...");
  if (dir.empty())
    detach_pvm(*pipe_->model.model);
  else
    load_pvm_adapter(*pipe_->model.model, dir);
  {
    std::lock_guard<std::mutex> l(mu_);
    sh_.model.adapter = dir;
  }
  refresh_model_info();
  const std::string msg = dir.empty() ? "PVM blocks removed" : "adapter loaded: " + dir;
  log_info("%s", msg.c_str());
  set_status(EngineStatus::Idle, msg);
}

void Session::attach_vismem_adapter(const std::string& dir) {
  auto& m = *pipe_->model.model;
  try {
    if (dir.empty())
      detach_vismem(m);
    else
      load_vismem_adapter(m, dir);  // strict; on failure nothing stays attached
  } catch (...) {
    detach_vismem(m);
    {
      std::lock_guard<std::mutex> l(mu_);
      sh_.model.vismem.clear();
    }
    refresh_model_info();
    throw;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    sh_.model.vismem = dir;
  }
  refresh_model_info();
}

void Session::do_load_vismem(const std::string& dir) {
  if (!pipe_) throw Error("no model loaded");
  set_status(EngineStatus::Loading, dir.empty() ? "removing the VisMem adapter" : "loading VisMem adapter " + dir + " ...");
  attach_vismem_adapter(dir);
  const std::string msg = dir.empty() ? "VisMem adapter removed" : "VisMem adapter loaded: " + dir;
  log_info("%s", msg.c_str());
  set_status(EngineStatus::Idle, msg);
}

void Session::refresh_model_info() {
  auto& m = pipe_->model.model;
  const auto& c = m->config();
  std::map<std::string, int64_t> params;
  int64_t bytes = 0;
  for (const auto& p : m->named_parameters()) {
    const std::string& n = p.key();
    const char* part = n.find(".pvm_block.") != std::string::npos ? "pvm"
                       : n.rfind("vismem.", 0) == 0           ? "vismem"
                       : n.rfind("model.visual.", 0) == 0     ? "vision"
                       : n.rfind("lm_head", 0) == 0           ? "lm_head"
                                                              : "text";
    params[part] += p.value().numel();
    params["total"] += p.value().numel();
    bytes += p.value().numel() * int64_t(p.value().element_size());
  }
  std::string vsum;
  if (const VismemImpl* vm = vismem_of(*m)) {
    const VismemConfig& vc = vm->cfg;
    char b[200];
    std::snprintf(b, sizeof b, "K=%lld, N_s=%lld, N_l=%lld, long-term LoRA on %lld layers, %zu separators",
                  (long long)vc.query_len, (long long)vc.short_len, (long long)vc.long_len, (long long)vc.long_layers,
                  vc.separator_ids.size());
    vsum = b;
  }
  std::lock_guard<std::mutex> l(mu_);
  ModelInfo& i = sh_.model;
  i.loaded = true;
  i.vismem_summary = vsum;
  if (vsum.empty()) i.vismem.clear();
  i.dir = pipe_->model.dir;
  i.layers = int(c.text.num_hidden_layers);
  i.heads = int(c.text.num_attention_heads);
  i.hidden = int(c.text.hidden_size);
  i.pvm_layers.assign(c.text.pvm_layers.begin(), c.text.pvm_layers.end());
  i.pvm_hidden = i.pvm_layers.empty() ? 0 : int(c.text.pvm_hidden_size);
  i.params = params;
  i.weight_bytes = bytes;
  i.rss_bytes = process_rss_bytes();
}

void Session::do_generate(const GenerateSettings& s, uint64_t run_id) {
  if (!pipe_) throw Error("no model loaded");
  auto& model = pipe_->model.model;
  const auto& mc = model->config();
  const bool has_pvm = !mc.text.pvm_layers.empty();
  const bool has_vismem = vismem_of(*model) != nullptr;
  std::vector<int> sides;
  if (s.baseline) sides.push_back(0);
  if (s.pvm) {
    if (has_pvm)
      sides.push_back(1);
    else
      log_warn("PVM side skipped: the model has no PVM blocks (load an adapter in the Model view)");
  }
  if (s.vismem && has_vismem) sides.push_back(2);  // the third arm only with an adapter attached
  if (sides.empty()) throw Error("nothing to generate: the model has no PVM blocks or VisMem adapter and baseline is off");

  set_status(EngineStatus::Generating, "preparing the prompt ...");
  PromptSpec spec;
  spec.system = s.system;
  spec.text = s.prompt;
  if (s.image.valid()) {
    ImageRGB im;
    im.width = s.image.width, im.height = s.image.height, im.rgb = s.image.rgb, im.source = s.image.source;
    spec.images.push_back(std::move(im));
  }
  PreparedPrompt prep = pipe_->prepare(spec);
  const int64_t merge = mc.vision.spatial_merge_size;
  GridInfo grid;
  if (!prep.images.empty()) {
    const auto& pi = prep.images[0];
    grid.rows = int(pi.grid_t * pi.grid_h / merge), grid.cols = int(pi.grid_w / merge);
    grid.resized_w = int(pi.resized_w), grid.resized_h = int(pi.resized_h);
  }
  ProbeOptions po;
  po.per_head = s.per_head;
  po.logit_lens = s.logit_lens;
  po.heatmap = s.heatmap && grid.valid();
  const int64_t nv = int64_t(grid.rows) * grid.cols;
  // Probes keep [layers + PVM layers][Nv] floats per token, twice (recorder + our copy).
  const int64_t heat_bytes = int64_t(sides.size()) * s.max_new_tokens *
                             (mc.text.num_hidden_layers + int64_t(mc.text.pvm_layers.size())) * nv * 4 * 2;
  if (po.heatmap && heat_bytes > kHeatmapBudgetBytes) {
    po.heatmap = false;
    log_warn("heatmaps off for this run: %lld MB would exceed the %lld MB budget (fewer tokens keep them)",
             (long long)(heat_bytes >> 20), (long long)(kHeatmapBudgetBytes >> 20));
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    sh_.run_id = run_id;
    sh_.grid = grid;
    sh_.settings = s;
    for (auto& sd : sh_.side) sd = SideData{};
    for (int sd : sides) sh_.side[sd].running = true, sh_.side[sd].prompt_tokens = int64_t(prep.request.prompt_ids.size());
    sh_.status.error.clear();
  }
  std::string arms;
  for (int sd : sides) arms += (arms.empty() ? "" : " + ") + std::string(side_name(Side(sd)));
  log_info("generating %d tokens (%s), prompt %zu tokens, %lld visual", s.max_new_tokens, arms.c_str(),
           prep.request.prompt_ids.size(), (long long)nv);

  const auto visual = visual_positions(prep.request.prompt_ids, mc.image_token_id);
  const auto t_start = Clock::now();
  const bool interleave = s.interleave && sides.size() >= 2;
  Baton baton(sides);
  std::string errors[kSides];

  auto run_side = [&](int side) {
    try {
      GenerationRequest req = prep.request;
      req.max_new_tokens = s.max_new_tokens;
      if (!s.stop_at_eos) req.stop_ids = {-1};  // no id is -1: every side is max_new_tokens long
      req.sampling = to_sampling_params(s.sampling);  // the same seed on every side
      req.sampling.validate();
      req.pvm = side == 1;
      req.cancel = &cancel_;
      if (side != 2) {  // VisMem excludes the interventions: its arm runs as the model is
        req.visual_attention_scale = s.visual_scale;
        req.visual_attention_restore = s.visual_restore;
        req.history_window = s.history_window;
      }
      if (side == 2) {  // VisMem: the backbone with PVM off and memories, as `pvm generate --vismem --no-pvm`
        req.vismem.enabled = true;
        req.vismem.invoke = s.vismem_invoke;
        req.vismem.p = s.vismem_p;
        req.vismem.max_invocations = s.vismem_max;
        req.vismem.seed = req.sampling.seed;
      }
      ProbeOptions o = po;
      o.pvm = side == 1;
      ProbeRecorder rec(model, visual, o, prep.request.grids, merge);
      // The recorder marks the start token (already copied out) when its memory is inserted.
      req.on_insert = [&](const MemoryInsertion& mi) {
        if (mi.seq != 0 || rec.tokens().empty()) return;
        std::lock_guard<std::mutex> l(mu_);
        SideData& sd = sh_.side[side];
        if (!sd.tokens.empty()) sd.tokens.back().invoked = rec.tokens().back().invoked;
      };
      std::vector<int32_t> pending;  // ids of an unfinished UTF-8 character
      auto t_first = Clock::now();
      double waited_s = 0;  // in baton.pass after the first token: the other side's turns
      req.on_token = [&](int64_t seq, int64_t tok, int64_t step) {
        if (seq != 0) return true;
        TokenRec r;
        r.id = tok;
        if (step == 0) t_first = Clock::now(), waited_s = 0;
        r.vismem_token = int(vismem_token_of(mc, tok));
        if (r.vismem_token >= 0) {
          r.piece = vismem_token_name(r.vismem_token);  // written as `pvm generate` prints it
        } else {
          pending.push_back(int32_t(tok));
          std::string piece = pipe_->decode(std::vector<int64_t>(pending.begin(), pending.end()), false);
          if (!ends_incomplete(piece) || pending.size() >= 4) {
            r.piece = piece;
            r.special = pending.size() == 1 && pipe_->tokenizer.is_special(int32_t(tok));
            pending.clear();
          }
        }
        const auto& probes = rec.tokens();
        if (!probes.empty() && probes.back().step == step) {
          const TokenProbe& tp = probes.back();
          r.mass = tp.mass;
          r.mass_nosink = tp.mass_nosink;
          r.mass_heads = tp.mass_heads;
          r.lens_first = int(tp.lens_first_layer);
          r.heat = tp.visual_attn;
          for (const auto& p : tp.pvm) {
            r.pvm_gate.push_back(p.gate);
            r.pvm_ratio.push_back(p.ratio);
            r.pvm_entropy.push_back(p.entropy);
            if (!p.attn.empty()) r.pvm_heat.push_back(p.attn);
          }
          r.invoked = tp.invoked;
          r.memory_mass = tp.memory_mass;
          for (const auto& ip : tp.inserted) {
            InsertedRec x;
            x.type = ip.type, x.rows = int(ip.rows), x.start = int(ip.token_index);
            x.visual = ip.visual, x.self = ip.self, x.other = ip.other;
            r.inserted.push_back(std::move(x));
          }
        }
        {
          std::lock_guard<std::mutex> l(mu_);
          SideData& sd = sh_.side[side];
          if (!r.special) sd.text += r.piece;
          sd.tokens.push_back(std::move(r));
          // Own decode time: the other side's turns (its prefill included) are not this side's.
          sd.decode_s = std::chrono::duration<double>(Clock::now() - t_first).count() - waited_s;
          sd.tokens_per_s = sd.decode_s > 0 ? (sd.tokens.size() - 1) / sd.decode_s : 0;
          size_t done = 0;
          for (int x : sides) done += sh_.side[x].tokens.size();
          sh_.status.progress = float(double(done) / (double(sides.size()) * s.max_new_tokens));
          char msg[200];
          std::snprintf(msg, sizeof msg, "generating: baseline %zu, PVM %zu%s of %d tokens (%.1f tokens/s)",
                        sh_.side[0].tokens.size(), sh_.side[1].tokens.size(),
                        has_vismem && s.vismem ? (", VisMem " + std::to_string(sh_.side[2].tokens.size())).c_str() : "",
                        s.max_new_tokens, sd.tokens_per_s);
          sh_.status.message = msg;
        }
        if (interleave) {
          const auto w0 = Clock::now();
          baton.pass(side);
          waited_s += std::chrono::duration<double>(Clock::now() - w0).count();
        }
        return true;
      };
      rec.attach(req);
      if (interleave) baton.acquire(side);
      GenerationResult res = pvm::generate(model, req);
      if (interleave) baton.finish(side);
      std::lock_guard<std::mutex> l(mu_);
      SideData& sd = sh_.side[side];
      sd.running = false;
      sd.finish = res.finish.empty() ? "length" : res.finish[0];
      sd.prefill_ms = res.prefill_ms;
      if (!interleave) sd.tokens_per_s = res.decode_tokens_per_s();  // interleaved: own time, from on_token
    } catch (const std::exception& e) {
      if (interleave) baton.finish(side);
      errors[side] = e.what();
      std::lock_guard<std::mutex> l(mu_);
      sh_.side[side].running = false;
      sh_.side[side].finish = "error";
    }
  };

  if (interleave) {
    // The last side here, the others on helper threads; the baton makes them take turns.
    std::vector<std::thread> others;
    for (size_t k = 0; k + 1 < sides.size(); ++k) others.emplace_back([&, k] { run_side(sides[k]); });
    run_side(sides.back());
    for (auto& t : others) t.join();
  } else {
    for (int sd : sides) run_side(sd);
  }
  for (int sd : sides)
    if (!errors[sd].empty()) throw Error(std::string(side_name(Side(sd))) + " generation: " + errors[sd]);
  const double secs = std::chrono::duration<double>(Clock::now() - t_start).count();
  std::string msg;
  {
    std::lock_guard<std::mutex> l(mu_);
    char b[320];
    int n = std::snprintf(b, sizeof b, "done in %.1f s: baseline %zu tokens (%s), PVM %zu tokens (%s)", secs,
                          sh_.side[0].tokens.size(), sh_.side[0].finish.empty() ? "-" : sh_.side[0].finish.c_str(),
                          sh_.side[1].tokens.size(), sh_.side[1].finish.empty() ? "-" : sh_.side[1].finish.c_str());
    if (std::find(sides.begin(), sides.end(), 2) != sides.end()) {
      size_t inv = 0;
      for (const TokenRec& t : sh_.side[2].tokens) inv += !t.invoked.empty();
      std::snprintf(b + n, sizeof b - size_t(n), ", VisMem %zu tokens (%s, %zu memories)", sh_.side[2].tokens.size(),
                    sh_.side[2].finish.empty() ? "-" : sh_.side[2].finish.c_str(), inv);
    }
    msg = b;
  }
  log_info("%s", msg.c_str());
  set_status(EngineStatus::Idle, msg);
}

void Session::do_inspect(const LoadRequest& r) {
  set_status(EngineStatus::Loading, "reading " + r.dir + " (config and tensor headers) ...");
  LoadPlan plan;
  plan.dir = r.dir;
  try {
    LoadOptions lo;
    lo.device = parse_device(r.device);
    lo.dtype = parse_dtype(r.dtype, lo.device);
    const CheckpointInfo info = inspect_checkpoint(r.dir, lo);
    const LoadMemoryEstimate e = estimate_load_memory(info.config, lo.dtype, lo.device);
    const auto& t = info.config.text;
    char b[256];
    std::snprintf(b, sizeof b, "%lld layers, hidden %lld, %lld heads, %.2f B parameters, %zu file%s", (long long)t.num_hidden_layers,
                  (long long)t.hidden_size, (long long)t.num_attention_heads, double(e.params) / 1e9, info.files.size(),
                  info.files.size() == 1 ? "" : "s");
    plan.summary = b;
    plan.dtype = dtype_name(lo.dtype), plan.device = lo.device.str();
    plan.params = e.params, plan.file_bytes = info.file_bytes;
    plan.weight_bytes = e.weights, plan.kv_bytes = e.kv_cache, plan.context = e.context;
    plan.need_bytes = e.total, plan.available_bytes = e.available;
    plan.ready = true;
    {
      std::lock_guard<std::mutex> l(mu_);
      sh_.plan = plan;
    }
    const std::string msg = r.dir + ": " + plan.summary + "; " + e.to_string();
    log_info("%s", msg.c_str());
    set_status(EngineStatus::Idle, msg);
  } catch (const std::exception& ex) {
    std::string m = ex.what();
    plan.error = m.substr(0, m.find('\n'));
    {
      std::lock_guard<std::mutex> l(mu_);
      sh_.plan = plan;
    }
    fail(plan.error);
  }
}

void Session::do_batch(const BatchSettings& b, uint64_t id) {
  if (!pipe_) throw Error("no model loaded");
  const auto t0 = Clock::now();
  {
    std::lock_guard<std::mutex> l(mu_);
    sh_.batch = BatchData{};
    sh_.batch.id = id;
    sh_.batch.settings = b;
    sh_.batch.running = true;
    sh_.status.error.clear();
  }
  set_status(EngineStatus::Generating, "batch: preparing the images ...", 0);
  try {
    DilutionOptions o;
    if (b.images.empty()) {
      scenes::SceneOptions so;
      so.min_objects = b.min_objects, so.max_objects = b.max_objects;
      o.images = write_scene_images(b.out_dir + "/images", b.scenes, uint64_t(b.scene_seed), so);
    } else {
      o.images = collect_images(b.images);
    }
    o.prompt = b.prompt.empty() ? load_prompt_preset("blind-painter") : b.prompt;
    o.max_new_tokens = b.max_new_tokens;
    o.stop_at_eos = b.stop_at_eos;
    o.out_dir = b.out_dir;
    o.cancel = &cancel_;
    const bool has_pvm = pipe_->model.model->config().has_pvm();
    const int64_t total = int64_t(o.images.size()) * (has_pvm ? 2 : 1) * b.max_new_tokens;
    const size_t n_images = o.images.size();
    {
      std::lock_guard<std::mutex> l(mu_);
      sh_.batch.images = o.images;
      sh_.batch.has_pvm = has_pvm;
      sh_.batch.tokens_total = total;
    }
    log_info("batch: %zu images x %s, %d tokens each, into %s", n_images, has_pvm ? "baseline + PVM" : "baseline",
             b.max_new_tokens, b.out_dir.c_str());
    // Progress as `pvm dilution` prints it: tokens/s over the batch, ETA from the tokens left.
    int64_t done = 0, answers_done = 0;
    o.on_token = [&](const std::string& run, size_t image, int64_t step) {
      ++done;
      const double el = std::chrono::duration<double>(Clock::now() - t0).count();
      std::lock_guard<std::mutex> l(mu_);
      BatchData& bd = sh_.batch;
      bd.tokens_done = done;
      bd.elapsed_s = el;
      bd.tokens_per_s = el > 0 ? double(done) / el : 0;
      bd.eta_s = bd.tokens_per_s > 0 ? double(total - done) / bd.tokens_per_s : -1;
      bd.current = (run == "pvm" ? std::string("PVM ") : std::string("baseline ")) + std::to_string(image + 1) + "/" +
                   std::to_string(n_images);
      sh_.status.progress = total > 0 ? float(double(done) / double(total)) : -1.0f;
      char msg[256];
      std::snprintf(msg, sizeof msg, "batch: %s, token %lld of %d, %.1f tokens/s, ETA %.0f s", bd.current.c_str(),
                    (long long)step + 1, b.max_new_tokens, bd.tokens_per_s, std::max(0.0, bd.eta_s));
      sh_.status.message = msg;
    };
    o.on_answer = [&](const std::string& run, size_t image, const std::vector<std::vector<float>>& mass,
                      const std::vector<std::vector<float>>& nosink) {
      BatchAnswer a;
      a.side = run == "pvm" ? 1 : 0;
      a.image = image;
      a.mass = mass, a.mass_nosink = nosink;
      std::lock_guard<std::mutex> l(mu_);
      sh_.batch.answers.push_back(std::move(a));
      ++answers_done;
    };
    const DilutionResult res = run_dilution(*pipe_, o);
    const bool cancelled = cancel_.load();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    char msg[512];
    std::snprintf(msg, sizeof msg, "batch %s: %lld answers (%zu images%s) in %.1f s; files in %s",
                  cancelled ? "cancelled" : "done", (long long)answers_done, n_images, has_pvm ? ", baseline + PVM" : "",
                  secs, b.out_dir.c_str());
    {
      std::lock_guard<std::mutex> l(mu_);
      sh_.batch.running = false;
      sh_.batch.finish = cancelled ? "cancelled" : "done";
      sh_.batch.fits_csv = res.fits_csv;
      sh_.batch.elapsed_s = secs;
      sh_.batch.eta_s = 0;
    }
    if (cancelled)
      log_warn("%s", msg);
    else
      log_info("%s", msg);
    set_status(EngineStatus::Idle, msg);
  } catch (...) {
    std::lock_guard<std::mutex> l(mu_);
    sh_.batch.running = false;
    sh_.batch.finish = "error";
    throw;
  }
}

// ---- UI side ----

void Session::sync(UiState& ui) {
  std::lock_guard<std::mutex> l(mu_);
  ui.status = sh_.status;
  ui.model = sh_.model;
  ui.plan = sh_.plan;
  ui.load = sh_.load;
  {
    // Answers are appended while a batch runs: copy only the new ones.
    const BatchData& src = sh_.batch;
    BatchData& dst = ui.batch;
    if (dst.id != src.id) dst = BatchData{}, dst.id = src.id;
    const size_t have = dst.answers.size() <= src.answers.size() ? dst.answers.size() : 0;
    if (have == 0) dst.answers.clear();
    dst.answers.insert(dst.answers.end(), src.answers.begin() + have, src.answers.end());
    dst.settings = src.settings;
    if (dst.images.size() != src.images.size()) dst.images = src.images;
    dst.has_pvm = src.has_pvm, dst.running = src.running, dst.finish = src.finish;
    dst.tokens_done = src.tokens_done, dst.tokens_total = src.tokens_total;
    dst.elapsed_s = src.elapsed_s, dst.tokens_per_s = src.tokens_per_s, dst.eta_s = src.eta_s;
    dst.current = src.current;
    if (dst.fits_csv.size() != src.fits_csv.size()) dst.fits_csv = src.fits_csv;
  }
  // A new generation replaces what the views show (also a restored session).
  if (sh_.run_id != ui.run_id && sh_.run_id > last_synced_run_) {
    last_synced_run_ = sh_.run_id;
    ui.run_id = sh_.run_id;
    ui.restored = false;
    ui.grid = sh_.grid;
    ui.settings = sh_.settings;
    for (auto& s : ui.side) s = SideData{};
  }
  if (ui.run_id != sh_.run_id) return;
  for (int k = 0; k < kSides; ++k) {
    const SideData& src = sh_.side[k];
    SideData& dst = ui.side[k];
    if (dst.tokens.size() > src.tokens.size()) dst.tokens.clear();
    // A VisMem start token is marked when its memory goes in, after it was appended: refresh the
    // last one copied.
    if (!dst.tokens.empty()) dst.tokens.back().invoked = src.tokens[dst.tokens.size() - 1].invoked;
    dst.tokens.insert(dst.tokens.end(), src.tokens.begin() + dst.tokens.size(), src.tokens.end());
    if (dst.text.size() != src.text.size()) dst.text = src.text;
    dst.finish = src.finish;
    dst.running = src.running;
    dst.tokens_per_s = src.tokens_per_s;
    dst.decode_s = src.decode_s;
    dst.prefill_ms = src.prefill_ms;
    dst.prompt_tokens = src.prompt_tokens;
  }
}

GridInfo Session::grid_for(int width, int height) const {
  GridInfo g;
  std::vector<int64_t> p;
  {
    std::lock_guard<std::mutex> l(mu_);
    p = proc_;
  }
  try {
    auto [h, w] = smart_resize(height, width, p[0] * p[1], p[2], p[3]);
    g.resized_h = int(h), g.resized_w = int(w);
    g.rows = int(h / (p[0] * p[1])), g.cols = int(w / (p[0] * p[1]));
  } catch (const std::exception&) {
    g = GridInfo{};
  }
  return g;
}

}  // namespace pvm::studio
