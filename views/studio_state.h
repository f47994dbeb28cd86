// What the views see of the engine, without torch: plain data (UiState, a UI-thread mirror the app
// refreshes once per frame through Engine::sync) and the Engine interface the views call to start
// work. app/studio/session.cpp implements Engine on top of LibTorch; tests use fakes.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace pvm::studio {

// The answers compared: the backbone alone, the backbone with its PVM blocks, and (when a VisMem
// adapter is loaded) the backbone with PVM off and VisMem's latent memories (docs/VISMEM.md).
enum class Side { Baseline = 0, Pvm = 1, Vismem = 2 };
inline constexpr int kSides = 3;
inline const char* side_name(Side s) { return s == Side::Baseline ? "baseline" : s == Side::Pvm ? "PVM" : "VisMem"; }

// What the latent rows of one inserted VisMem memory attended to (engine/probes.h
// InsertedMemoryProbe), per layer: the prompt's image, the memory's own chunk, everything else.
struct InsertedRec {
  std::string type;            // "short" | "long"
  int rows = 0;                // latent rows
  int start = -1;              // index of the start token in the answer
  std::vector<float> visual, self, other;  // [layers], the three sum to 1
};

// Probes of one generated token (engine/probes.h TokenProbe, flattened to floats).
struct TokenRec {
  int64_t id = -1;
  std::string piece;                           // text this token adds to the answer (may be empty)
  bool special = false;                        // a special token (<|im_end|>, ...)
  std::vector<float> mass, mass_nosink;        // [layers] visual attention mass
  std::vector<std::vector<float>> mass_heads;  // [layers][heads] when per-head probes are on
  std::vector<float> pvm_gate, pvm_ratio, pvm_entropy;  // [PVM layers], PVM side only
  int lens_first = -1;                         // logit-lens first agreeing layer, -1 when off
  std::vector<std::vector<float>> heat;        // [layers][Nv] attention on each visual token (heatmaps on)
  std::vector<std::vector<float>> pvm_heat;    // [PVM layers][Nv]
  // VisMem arm only (engine/probes.h): which of its four tokens this is (0..3: <ms_I>, <ms_E>,
  // <ml_I>, <ml_E>; -1 none); on a start token the memory inserted after it ("short" | "long");
  // attention on all latent rows so far [layers]; on the token the insertion's forward produced,
  // what the inserted rows attended to.
  int vismem_token = -1;
  std::string invoked;
  std::vector<float> memory_mass;
  std::vector<InsertedRec> inserted;
};

struct SideData {
  std::vector<TokenRec> tokens;
  std::string text;     // the answer so far (pieces of non-special tokens)
  std::string finish;   // "" while running or never run; "stop" | "length" | "cancelled" | "error"
  bool running = false;
  double tokens_per_s = 0, prefill_ms = 0;
  int64_t prompt_tokens = 0;
  // Seconds this side spent decoding since its first token, not counting the turns of the other
  // side when the two are interleaved (tokens_per_s = (tokens - 1) / decode_s).
  double decode_s = 0;
};

// The merged patch grid of an image as the model sees it (one cell = one visual token).
struct GridInfo {
  int rows = 0, cols = 0;        // merged grid (grid_h / merge, grid_w / merge)
  int resized_w = 0, resized_h = 0;
  bool valid() const { return rows > 0 && cols > 0; }
};

struct ModelInfo {
  bool loaded = false;
  std::string dir;                 // folder, or "random:<preset>" for an in-memory demo model
  std::string note;                // e.g. "random weights: words are noise"
  std::string device, dtype;
  int layers = 0, heads = 0, hidden = 0;
  std::vector<int> pvm_layers;     // decoder layers that carry a PVM block (empty: none)
  int pvm_hidden = 0;              // width of those blocks (0: none)
  std::string adapter;             // adapter folder loaded on top, "" when none
  std::string vismem;              // VisMem adapter folder attached, "" when none
  std::string vismem_summary;      // "K=8, N_s=8, N_l=16, long-term LoRA on 4 layers, 5 separators"
  std::map<std::string, int64_t> params;  // by part ("vision", "text", "lm_head", "pvm", "total")
  int64_t weight_bytes = 0;        // parameters as loaded (dtype size included)
  int64_t rss_bytes = 0;           // process resident memory after loading
};

struct SamplingSettings {
  float temperature = 0.0f;  // 0 = greedy
  float top_p = 1.0f, min_p = 0.0f, repetition_penalty = 1.0f;
  int top_k = 0;
  int64_t seed = 0;
};

struct ImageData {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3
  std::string source;        // file path, "scene:<seed>" or a label
  bool valid() const { return width > 0 && height > 0 && rgb.size() == size_t(width) * height * 3; }
};

struct GenerateSettings {
  std::string system, prompt;
  ImageData image;
  SamplingSettings sampling;
  int max_new_tokens = 256;  // 1 .. 16384
  bool stop_at_eos = true;   // false: every side runs to max_new_tokens (past the answer's end, as pvm dilution)
  bool baseline = true, pvm = true;
  bool vismem = true;        // the VisMem arm, when an adapter is loaded (engine/generate.h VismemGenerate)
  std::string vismem_invoke = "model";  // "model" | "separators"
  float vismem_p = 1.0f;     // separators: invocation probability after a separator
  int vismem_max = 4;        // invocations per answer at most
  bool interleave = true;    // alternate token by token (else one side after the other)
  // The dilution interventions of `pvm generate` (engine/generate.h), on the baseline and PVM arms
  // only (VisMem excludes them): every generated token's image attention x visual_scale and x (n/P)^
  // visual_restore, and the answer-history window (a token sees the prompt and the last N answer
  // tokens: how the default model, window32, was trained). Off: 1, 0, 0.
  float visual_scale = 1.0f;   // (0, 1e6]
  float visual_restore = 0.0f; // [-4, 4] (< 0: the image fades faster)
  int history_window = 0;      // 0 .. 1 << 20
  bool per_head = false, heatmap = true, logit_lens = false;
};

struct EngineStatus {
  enum State { Idle, Loading, Generating } state = Idle;
  std::string message;   // one line for the status bar
  float progress = -1;   // 0..1, or -1 when unknown
  std::string error;     // last error (one line), "" when the last job succeeded
  uint64_t jobs_done = 0;
};

// A batch of dilution answers (the studio's `pvm dilution`): every image answered by the baseline
// and, when the model has PVM blocks, by PVM, greedy, with the visual mass of every token.
struct BatchSettings {
  std::vector<std::string> images;  // files or folders (as `pvm dilution --images`); empty: new scenes
  int scenes = 8;                   // new scenes when images is empty (held-out seeds of scene_seed)
  int64_t scene_seed = 0;
  int min_objects = 4, max_objects = 16;
  std::string prompt;               // "" = the blind-painter preset, like `pvm dilution`
  int max_new_tokens = 64;          // 2 .. 16384
  bool stop_at_eos = false;         // false: every answer is max_new_tokens long
  std::string out_dir;              // where the engine writes what `pvm dilution --out` writes
};

struct BatchAnswer {
  int side = 0;                            // 0 baseline, 1 PVM
  size_t image = 0;
  std::vector<std::vector<float>> mass, mass_nosink;  // [tokens][layers]
};

struct BatchData {
  uint64_t id = 0;                  // the engine's batch number (0: none yet)
  BatchSettings settings;
  std::vector<std::string> images;  // the image files measured
  bool has_pvm = false;
  bool running = false;
  std::string finish;               // "" while running or never run; "done" | "cancelled" | "error"
  std::vector<BatchAnswer> answers; // in the order they finished (appended while running)
  int64_t tokens_done = 0, tokens_total = 0;
  double elapsed_s = 0, tokens_per_s = 0, eta_s = -1;
  std::string current;              // "baseline 3/8" while running
  std::string fits_csv;             // the engine's fits.csv text once done
};

// What opening a checkpoint folder will take, read from its config.json and safetensors headers
// before anything is loaded (engine/memory_estimate.h estimate_load_memory).
struct LoadPlan {
  std::string dir;
  bool ready = false;               // inspected without error
  std::string error;                // why the folder cannot be loaded ("" when ready)
  std::string summary;              // "36 layers, hidden 4096, 8.77 B parameters, 4 shards"
  std::string dtype, device;
  int64_t params = 0, file_bytes = 0;
  int64_t weight_bytes = 0;         // the parameters in the dtype they will be loaded in
  int64_t kv_bytes = 0;             // KV cache of one answer of `context` tokens
  int64_t context = 0;
  int64_t need_bytes = 0;           // weights + KV cache + working memory
  int64_t available_bytes = -1;     // what the machine has free (-1 unknown)
  bool fits() const { return available_bytes < 0 || need_bytes <= available_bytes; }
};

// The last load of a checkpoint, for the Model view's progress bar (kept after it ends).
struct LoadProgress {
  std::string dir;
  std::string state;                // "" none | "loading" | "loaded" | "cancelled" | "failed"
  float fraction = 0;
  int64_t done_bytes = 0, total_bytes = 0;
  double elapsed_s = 0;
};

// The UI thread's copy. Views read it freely; only Engine::sync writes it (once per frame).
struct UiState {
  EngineStatus status;
  ModelInfo model;
  GridInfo grid;                // of the image in the last generation
  SideData side[kSides];
  GenerateSettings settings;    // what the current answers were generated with
  uint64_t run_id = 0;          // engine generation the sides belong to (0: none; >= 2^40: restored)
  bool restored = false;        // sides came from a saved session, not the engine
  BatchData batch;
  LoadPlan plan;
  LoadProgress load;
  const SideData& of(Side s) const { return side[int(s)]; }
};

// The token under the mouse (Compare view), read by the image overlay and plot cursors.
struct Selection {
  int token = -1;               // index into the generated tokens, -1 none
  Side side = Side::Pvm;
  bool pinned = false;          // clicked: stays when the mouse leaves
};

// LoadRequest::dir naming the in-memory random model of the qwen3-vl-tiny preset.
inline constexpr const char* kRandomModel = "random:qwen3-vl-tiny";

struct LoadRequest {
  std::string dir;              // "" = the default model (the random one when absent), or kRandomModel
  std::string device = "cpu", dtype = "auto";
  std::string adapter;          // optional PVM adapter folder loaded after the model
  // Optional VisMem adapter attached after the model; one that does not load is an error in the
  // status and the log, and the model stays loaded without it.
  std::string vismem;
  // Scripted runs (--load-cancel-at): cancel the load once this share of the bytes is read, as
  // the Cancel button would. < 0: never.
  double cancel_at = -1;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // All start work on the engine's worker and return at once; false (with *why) when busy or the
  // request is invalid. Progress, results and errors arrive through sync().
  virtual bool load_model(const LoadRequest& r, std::string* why) = 0;
  virtual bool load_adapter(const std::string& dir, std::string* why) = 0;  // "" detaches PVM blocks
  // VisMem adapter ("" detaches it): with one attached, generate() adds the VisMem arm.
  virtual bool load_vismem(const std::string& dir, std::string* why) {
    (void)dir;
    if (why) *why = "this engine has no VisMem";
    return false;
  }
  virtual bool generate(const GenerateSettings& s, std::string* why) = 0;
  virtual void stop() = 0;  // cancels a generation, a batch or a model load
  virtual bool busy() const = 0;
  // Copies what changed since the last call into `ui` (tokens are appended, never re-copied).
  virtual void sync(UiState& ui) = 0;
  // Merged patch grid the loaded (or default) processor gives an image of this size.
  virtual GridInfo grid_for(int width, int height) const = 0;
  // Reads a checkpoint folder's config and headers and estimates the memory it needs (UiState::plan).
  virtual bool inspect_model(const LoadRequest& r, std::string* why) {
    (void)r;
    if (why) *why = "this engine cannot inspect checkpoints";
    return false;
  }
  // Runs a dilution batch on the loaded model (UiState::batch).
  virtual bool run_batch(const BatchSettings& s, std::string* why) {
    (void)s;
    if (why) *why = "this engine cannot run batches";
    return false;
  }
};

// Everything a view may need, handed to every view at construction.
struct StudioContext {
  Engine* engine = nullptr;
  UiState* ui = nullptr;
  Selection sel;
  GenerateSettings draft;       // the Prompt view's form (image from the Image view)
  // Set by views to ask the app for cross-view actions.
  std::function<void(const std::string& adapter_dir)> request_load_adapter;
};

}  // namespace pvm::studio
