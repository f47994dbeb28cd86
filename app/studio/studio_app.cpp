#include "app/studio/studio_app.h"

#include <GL/gl.h>
#include <GLFW/glfw3.h>
#include <stb_image.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/studio/bench_generate.h"
#include "app/studio/layout.h"
#include "app/studio/session.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/version.h"
#include "engine/plot_png.h"
#include "imgui.h"
#include "imgui_impl_glfw.h"
#include "imgui_impl_opengl3.h"
#include "imgui_internal.h"
#include "views/capture.h"
#include "views/fonts.h"
#include "views/file_browser.h"
#include "views/session_io.h"
#include "views/view_about.h"
#include "views/view_batch_dilution.h"
#include "views/view_compare.h"
#include "views/view_dilution.h"
#include "views/view_dilution_map.h"
#include "views/view_gaze_replay.h"
#include "views/view_image.h"
#include "views/view_log.h"
#include "views/view_model.h"
#include "views/view_prompt.h"
#include "views/view_pvm.h"
#include "views/view_training.h"

namespace pvm::studio {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const ImVec4 kWindowBg(0.10f, 0.105f, 0.115f, 1.0f);  // also the clear colour: tiled windows are transparent

std::string g_glfw_error;  // last GLFW error, for one-line messages
// Ctrl+C / kill end the loop normally, so the layout is saved and GL is torn down in order.
volatile std::sig_atomic_t g_quit_signal = 0;
void on_quit_signal(int) { g_quit_signal = 1; }
void on_glfw_error(int code, const char* msg) { g_glfw_error = msg ? msg : ("GLFW error " + std::to_string(code)); }

std::string config_dir() {
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) return std::string(x) + "/pvm-studio";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.config/pvm-studio";
  return {};
}

std::string no_display_message(const std::string& why) {
  return "pvm-studio: no display (" + why +
         "); render headless with: xvfb-run -s \"-screen 0 1920x1080x24\" pvm-studio --screenshot out.png "
         "--demo, or use the 'pvm' CLI for model work";
}

// A dropped adapter folder is VisMem's when its adapter_config.json says so; anything else goes to
// the PVM loader, which names what is wrong. Only a regular file is read (a FIFO would block).
bool is_vismem_adapter(const std::string& dir) {
  const std::string f = dir + "/adapter_config.json";
  if (!pvm::is_regular_file(f)) return false;
  try {
    const auto j = nlohmann::json::parse(pvm::read_file_to_string(f, uint64_t(64) << 20, "adapter config"));
    return j.is_object() && j.value("adapter_type", std::string()) == "vismem";
  } catch (const std::exception&) {
    return false;
  }
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// CPU time of the whole process (llvmpipe's raster threads included): on a shared machine it
// tells what a frame costs when wall time is inflated by other load.
double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

struct FrameStats {
  std::vector<double> total, ui, cpu, decimate, raster;
  static double mean(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / v.size();
  }
  static double pct(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, size_t(std::ceil(p * v.size())) - 1)];
  }
};

class StudioApp {
 public:
  explicit StudioApp(const StudioOptions& o) : opt_(o) {}
  int run();

 private:
  int init_window();
  void init_imgui();
  void shutdown();
  void create_views();
  void register_ini_handler();
  void build_ui();
  void draw_menu();
  void draw_status();
  void draw_hosts();
  void start_up();
  bool demo_step(int frame);  // false when the scripted demo failed
  bool script_step(int frame);  // --batch-*, --train-launch, --select-model; false when it failed
  bool apply_train_set();
  void step_compare();          // after "Load adapter & compare": generate once the adapter is in
  std::string status_text() const;
  void fill_bench_trace();
  bool save_session_to(const std::string& dir, std::string* err);
  bool open_session(const std::string& dir, std::string* err);
  void export_plots(const std::string& dir, bool png_via_gl);
  nlohmann::json view_options() const;
  void apply_view_options(const nlohmann::json& j);
  bool headless() const { return !opt_.screenshot.empty() || opt_.bench_frames > 0 || opt_.bench_generate > 0; }

  StudioOptions opt_;
  GLFWwindow* win_ = nullptr;
  std::string ini_path_;
  std::unique_ptr<Session> session_;
  UiState ui_;
  StudioContext ctx_;
  std::vector<std::unique_ptr<View>> views_;
  std::vector<View*> view_ptrs_;
  AboutView* about_ = nullptr;
  ImageView* image_ = nullptr;
  PromptView* prompt_ = nullptr;
  ModelView* model_ = nullptr;
  CompareView* compare_ = nullptr;
  DilutionView* dilution_ = nullptr;
  DilutionMapView* dmap_ = nullptr;
  BatchDilutionView* batch_ = nullptr;
  GazeReplayView* replay_ = nullptr;
  PvmActivityView* pvm_ = nullptr;
  TrainingView* training_ = nullptr;
  LogView* log_ = nullptr;
  LayoutFractions fractions_;
  FileBrowser browser_;
  bool quit_ = false;
  bool bench_data_ = false;
  GenerateBenchFrames gen_frames_;  // --bench-generate: frames drawn while the model worked
  Clock::time_point gen_t0_;
  int gen_prev_ = 0;
  Clock::time_point gen_start_, gen_progress_;  // --bench-generate: first generating frame, last progress line
  void bench_progress();
  // Frames per second while the model streams: 30, or 10 when a wide decoder runs on the CPU with
  // every core (its worker shares the UI's core: fewer frames, more tokens; input still wakes the UI).
  double streaming_fps() const {
    return ui_.model.device == "cpu" && ui_.model.hidden >= 1024 && session_ && session_->model_threads() > 1 ? 10.0 : 30.0;
  }
  // Headless runs answer for the inputs of the command line (--model, --pvm, --image, --open) as
  // the CLI does: a bad one is one line on stderr, exit 1, and no output file written.
  bool startup_failed_ = false;
  bool startup_pending_ = false;  // the --model / --pvm load is still on the worker
  Clock::time_point startup_t0_;
  void startup_error(const std::string& msg) {
    std::fprintf(stderr, "pvm-studio: error: %s\n", msg.c_str());
    startup_failed_ = true;
  }
  bool replay_started_ = false;  // --replay-export / --replay-play began
  uint64_t restores_ = 0;
  std::vector<std::string> dropped_;  // files dropped on the window (GLFW callback -> next frame)
  // Recent frame times (work only, not the idle wait) for the status line.
  std::vector<double> recent_ms_;
  size_t recent_next_ = 0;
  double frame_ms() const { return FrameStats::mean(recent_ms_); }

  // Scripted batch / training / checkpoint runs.
  int script_state_ = 0;
  int script_done_frame_ = -1;
  bool script_cancel_sent_ = false, script_load_started_ = false;
  Clock::time_point script_t0_;
  // "Load adapter & compare": the adapter being loaded, then a generation of both sides.
  std::string compare_adapter_;
  bool compare_pending_ = false;

  // Scripted demo.
  int demo_state_ = 0;
  int demo_done_frame_ = -1;
  Clock::time_point demo_t0_;

  struct IniView {
    int open = -1, floating = 0, selected = 0;
  };
  std::map<std::string, IniView> ini_views_;
  std::string selected_[kTiledSlots];  // tab in front per slot (saved)
};

StudioApp* g_app = nullptr;  // for the GLFW drop callback

// ---- window & ImGui ----

int StudioApp::init_window() {
  const char* display = std::getenv("DISPLAY");
  const char* wayland = std::getenv("WAYLAND_DISPLAY");
  if ((!display || !*display) && (!wayland || !*wayland)) {
    std::fprintf(stderr, "%s\n", no_display_message("DISPLAY is not set").c_str());
    return 2;
  }
  glfwSetErrorCallback(on_glfw_error);
  if (!glfwInit()) {
    std::fprintf(stderr, "%s\n", no_display_message("GLFW: " + g_glfw_error).c_str());
    return 2;
  }
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 0);
  if (headless()) glfwWindowHint(GLFW_RESIZABLE, GLFW_FALSE);  // the PNG must have the asked size
  int w = opt_.width, h = opt_.height;
  if (!opt_.size_given) {  // default size, shrunk to fit small monitors
    if (GLFWmonitor* mon = glfwGetPrimaryMonitor()) {
      int mx, my, mw, mh;
      glfwGetMonitorWorkarea(mon, &mx, &my, &mw, &mh);
      if (mw > 0 && mh > 0) w = std::min(w, int(mw * 0.92)), h = std::min(h, int(mh * 0.92));
    }
  }
  win_ = glfwCreateWindow(w, h, "PVM Studio", nullptr, nullptr);
  if (!win_) {
    std::fprintf(stderr, "pvm-studio: error: cannot create an OpenGL 3.0 window: %s\n", g_glfw_error.c_str());
    glfwTerminate();
    return 1;
  }
  glfwMakeContextCurrent(win_);
  glfwSwapInterval(headless() ? 0 : 1);  // benchmarks must not wait for vsync
  return 0;
}

void StudioApp::init_imgui() {
  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  io.ConfigWindowsMoveFromTitleBarOnly = true;  // dragging inside a plot pans it
  io.IniFilename = nullptr;
  if (!opt_.ini.empty()) {
    ini_path_ = opt_.ini;
    io.IniFilename = ini_path_.c_str();
  } else if (!opt_.no_ini && !headless()) {  // headless runs must not depend on (or touch) user state
    std::string dir = config_dir();
    std::error_code ec;
    if (!dir.empty() && (fs::create_directories(dir, ec), fs::is_directory(dir, ec))) {
      ini_path_ = dir + "/imgui.ini";
      io.IniFilename = ini_path_.c_str();
    } else {
      log_warn("cannot create config dir '%s': layout will not be saved", dir.c_str());
    }
  }

  ImGui::StyleColorsDark();
  ImGuiStyle& st = ImGui::GetStyle();
  st.WindowRounding = 0.0f;  // tiled windows read as one surface
  st.FrameRounding = 3.0f;
  st.GrabRounding = 3.0f;
  st.PopupRounding = 3.0f;
  st.WindowBorderSize = 1.0f;
  st.Colors[ImGuiCol_WindowBg] = kWindowBg;

  float xs = 1.0f, ys = 1.0f;
  glfwGetWindowContentScale(win_, &xs, &ys);
  const float scale = std::clamp(std::max(xs, ys), 1.0f, 3.0f);
  load_fonts(opt_.font_size > 0 ? opt_.font_size : std::round(15.0f * scale));
  if (scale > 1.0f) st.ScaleAllSizes(scale);

  ImGui_ImplGlfw_InitForOpenGL(win_, true);
  ImGui_ImplOpenGL3_Init("#version 130");
}

void StudioApp::shutdown() {
  session_.reset();  // joins the worker (a running generation is cancelled)
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();  // writes the ini, which asks the views for their state
  view_ptrs_.clear();
  views_.clear();  // views own GL textures: free them while the context is alive
  glfwDestroyWindow(win_);
  glfwTerminate();
}

void StudioApp::create_views() {
  ctx_.engine = session_.get();
  ctx_.ui = &ui_;
  ctx_.request_load_adapter = [this](const std::string& dir) {
    if (model_->load_adapter(dir)) compare_adapter_ = dir, compare_pending_ = true, model_->focus();
  };
  auto add = [this](auto v) {
    auto* p = v.get();
    views_.push_back(std::move(v));
    view_ptrs_.push_back(p);
    return p;
  };
  image_ = add(std::make_unique<ImageView>(ctx_));
  prompt_ = add(std::make_unique<PromptView>(ctx_));
  model_ = add(std::make_unique<ModelView>(ctx_));
  compare_ = add(std::make_unique<CompareView>(ctx_));
  replay_ = add(std::make_unique<GazeReplayView>(ctx_));
  dilution_ = add(std::make_unique<DilutionView>(ctx_));
  dmap_ = add(std::make_unique<DilutionMapView>(ctx_));
  batch_ = add(std::make_unique<BatchDilutionView>(ctx_));
  pvm_ = add(std::make_unique<PvmActivityView>(ctx_));
  training_ = add(std::make_unique<TrainingView>(ctx_));
  log_ = add(std::make_unique<LogView>());
  about_ = add(std::make_unique<AboutView>());
  if (opt_.vector_plots) dilution_->plot().set_raster(false);
}

// [PvmStudio][<view>] Open / Floating / Selected and [PvmStudio][Layout] fractions: the layout the
// user arranged (tabs shown, popped-out views, splitter positions) survives restarts.
void StudioApp::register_ini_handler() {
  ImGuiSettingsHandler h;
  h.TypeName = "PvmStudio";
  h.TypeHash = ImHashStr("PvmStudio");
  h.UserData = this;
  h.ReadOpenFn = [](ImGuiContext*, ImGuiSettingsHandler* hd, const char* name) -> void* {
    auto* app = static_cast<StudioApp*>(hd->UserData);
    if (std::string(name) == "Layout") return &app->fractions_;
    return &app->ini_views_[name];
  };
  h.ReadLineFn = [](ImGuiContext*, ImGuiSettingsHandler* hd, void* entry, const char* line) {
    auto* app = static_cast<StudioApp*>(hd->UserData);
    if (entry == &app->fractions_) {
      float v;
      if (std::sscanf(line, "Left=%f", &v) == 1) app->fractions_.left = v;
      if (std::sscanf(line, "LeftSplit=%f", &v) == 1) app->fractions_.left_split = v;
      if (std::sscanf(line, "CenterSplit=%f", &v) == 1) app->fractions_.center_split = v;
      app->fractions_.clamp();
      return;
    }
    auto* e = static_cast<IniView*>(entry);
    int v;
    if (std::sscanf(line, "Open=%d", &v) == 1) e->open = v;
    if (std::sscanf(line, "Floating=%d", &v) == 1) e->floating = v;
    if (std::sscanf(line, "Selected=%d", &v) == 1) e->selected = v;
  };
  h.ApplyAllFn = [](ImGuiContext*, ImGuiSettingsHandler* hd) {
    auto* app = static_cast<StudioApp*>(hd->UserData);
    for (View* v : app->view_ptrs_) {
      auto it = app->ini_views_.find(v->name());
      if (it == app->ini_views_.end() || v->home_slot() == Slot::Floating) continue;
      if (it->second.open >= 0) v->set_open(it->second.open != 0);
      v->set_slot(it->second.floating ? Slot::Floating : v->home_slot());
      if (it->second.selected) v->focus();
    }
  };
  h.WriteAllFn = [](ImGuiContext*, ImGuiSettingsHandler* hd, ImGuiTextBuffer* out) {
    auto* app = static_cast<StudioApp*>(hd->UserData);
    const LayoutFractions& f = app->fractions_;
    out->appendf("[%s][Layout]\nLeft=%.4f\nLeftSplit=%.4f\nCenterSplit=%.4f\n\n", hd->TypeName, f.left, f.left_split,
                 f.center_split);
    for (View* v : app->view_ptrs_) {
      if (v->home_slot() == Slot::Floating) continue;
      const bool sel = v->slot() != Slot::Floating && app->selected_[int(v->slot())] == v->name();
      out->appendf("[%s][%s]\nOpen=%d\nFloating=%d\nSelected=%d\n\n", hd->TypeName, v->name().c_str(),
                   v->is_open() ? 1 : 0, v->slot() == Slot::Floating ? 1 : 0, sel ? 1 : 0);
    }
  };
  ImGui::GetCurrentContext()->SettingsHandlers.push_back(h);
}

// ---- session files ----

nlohmann::json StudioApp::view_options() const {
  return {{"image", {{"grid", image_->show_grid}, {"heatmap", image_->show_heat}, {"pvm", image_->heat_pvm},
                     {"layer", image_->heat_layer}, {"opacity", image_->opacity}}},
          {"compare", {{"color_mode", compare_->color_mode}, {"color_layer", compare_->color_layer}}},
          {"dilution", {{"layer_mode", dilution_->layer_mode}, {"head_layer", dilution_->head_layer},
                        {"nosink", dilution_->nosink}, {"fit", dilution_->show_fit}, {"log_x", dilution_->log_x},
                        {"log_y", dilution_->log_y}, {"smoothing", dilution_->smoothing},
                        {"vismem", dilution_->show_side[2]}, {"memory_mass", dilution_->show_memory}}},
          {"dilution_map", {{"mode", int(dmap_->mode)}, {"nosink", dmap_->nosink}}},
          {"gaze_replay", {{"speed", replay_->clock.speed}, {"loop", replay_->clock.loop}, {"pvm", replay_->heat_pvm},
                           {"layer", replay_->heat_layer}}},
          {"selection", {{"token", ctx_.sel.token}, {"side", int(ctx_.sel.side)}}}};
}

void StudioApp::apply_view_options(const nlohmann::json& j) {
  auto get = [&](const char* v, const char* k, auto def) {
    try {
      if (j.contains(v) && j[v].contains(k)) return j[v][k].get<decltype(def)>();
    } catch (const std::exception&) {
    }
    return def;
  };
  image_->show_grid = get("image", "grid", true);
  image_->show_heat = get("image", "heatmap", true);
  image_->heat_pvm = get("image", "pvm", false);
  image_->heat_layer = get("image", "layer", -1);
  image_->opacity = get("image", "opacity", 0.55f);
  compare_->color_mode = get("compare", "color_mode", 1);
  compare_->color_layer = get("compare", "color_layer", -1);
  dilution_->layer_mode = get("dilution", "layer_mode", 0);
  dilution_->head_layer = get("dilution", "head_layer", -1);
  dilution_->nosink = get("dilution", "nosink", false);
  dilution_->show_fit = get("dilution", "fit", true);
  dilution_->log_x = get("dilution", "log_x", false);
  dilution_->log_y = get("dilution", "log_y", false);
  dilution_->smoothing = get("dilution", "smoothing", 1);
  dilution_->show_side[2] = get("dilution", "vismem", true);
  dilution_->show_memory = get("dilution", "memory_mass", true);
  dilution_->plot().set_x_scale(dilution_->log_x ? AxisScale::Log10 : AxisScale::Linear);
  dilution_->plot().set_y_scale(dilution_->log_y ? AxisScale::Log10 : AxisScale::Linear);
  dmap_->mode = DilutionMapView::Mode(std::clamp(get("dilution_map", "mode", 2), 0, 2));
  dmap_->nosink = get("dilution_map", "nosink", false);
  replay_->clock.speed = std::clamp(get("gaze_replay", "speed", 8.0f), ReplayClock::kMinSpeed, ReplayClock::kMaxSpeed);
  replay_->clock.loop = get("gaze_replay", "loop", false);
  replay_->heat_pvm = get("gaze_replay", "pvm", false);
  replay_->heat_layer = get("gaze_replay", "layer", -1);
  ctx_.sel.token = get("selection", "token", -1);
  ctx_.sel.side = Side(std::clamp(get("selection", "side", 1), 0, kSides - 1));
  ctx_.sel.pinned = ctx_.sel.token >= 0;
}

// Every plot as CSV (its data) and PNG. png_via_gl: the widgets' own offscreen capture (what is on
// screen, next frame, only for plots being drawn); else engine/plot_png renders them right away.
void StudioApp::export_plots(const std::string& dir, bool png_via_gl) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::vector<std::pair<std::string, Plot*>> plots = {{"dilution", &dilution_->plot()},
                                                      {"pvm_gate", &pvm_->gate_plot()},
                                                      {"pvm_injection_ratio", &pvm_->ratio_plot()},
                                                      {"pvm_entropy", &pvm_->entropy_plot()},
                                                      {"logit_lens", &pvm_->lens_plot()}};
  dilution_->rebuild(true);
  pvm_->rebuild();
  int n = 0;
  for (auto& [name, p] : plots) {
    if (p->series_count() == 0) continue;
    const std::string base = (fs::path(dir) / name).string();
    std::string err;
    if (!p->save_csv(base + ".csv", &err)) log_error("%s", err.c_str());
    if (png_via_gl) {
      p->request_png(base + ".png");
    } else {
      pvm::PlotSpec spec;
      spec.title = name;
      spec.width = 1000, spec.height = 600;
      spec.logx = p->x_scale() == AxisScale::Log10;
      spec.logy = p->y_scale() == AxisScale::Log10;
      for (size_t i = 0; i < p->series_count() && i < 64; ++i) {
        pvm::PlotSeries ps = p->series(i);  // the same type: only colour and width differ
        if (!ps.color) ps.color = plot_palette(int(i));
        ps.thickness = ps.thickness >= 2 ? 2 : 1;
        ps.legend = true;  // the PNG lists every named series
        spec.series.push_back(std::move(ps));
      }
      try {
        pvm::write_line_plot(base + ".png", spec);
      } catch (const std::exception& e) {
        log_error("%s", e.what());
      }
    }
    ++n;
  }
  log_info("%d plots exported to %s (CSV%s)", n, dir.c_str(), png_via_gl ? ", PNG as they are drawn" : " + PNG");
}

bool StudioApp::save_session_to(const std::string& dir, std::string* err) {
  try {
    save_session(dir, ui_, prompt_->preset, view_options());
    export_plots((fs::path(dir) / "plots").string(), false);
  } catch (const std::exception& e) {
    *err = e.what();
    return false;
  }
  log_info("session saved to %s", dir.c_str());
  return true;
}

bool StudioApp::open_session(const std::string& dir, std::string* err) {
  LoadedSession s;
  try {
    s = load_session(dir);
  } catch (const std::exception& e) {
    *err = e.what();
    return false;
  }
  const ModelInfo model = ui_.model;  // the loaded model stays; the session only says what it used
  for (int k = 0; k < kSides; ++k) ui_.side[k] = std::move(s.ui.side[k]);
  ui_.grid = s.ui.grid;
  ui_.settings = s.ui.settings;
  // A run id no engine run will have: views see new data; the engine's next run replaces it.
  ui_.run_id = (uint64_t(1) << 40) + ++restores_;
  ui_.restored = true;
  ctx_.draft = ui_.settings;
  if (ui_.settings.image.valid()) image_->set_image(ui_.settings.image);
  prompt_->preset = s.preset;
  apply_view_options(s.views);
  if (ui_.model.layers == 0) ui_.model.layers = s.ui.model.layers;
  log_info("session %s: %zu + %zu + %zu tokens (baseline, PVM, VisMem), generated with %s%s%s", dir.c_str(),
           ui_.side[0].tokens.size(), ui_.side[1].tokens.size(), ui_.side[2].tokens.size(), s.ui.model.dir.c_str(),
           s.ui.model.adapter.empty() ? "" : (" + " + s.ui.model.adapter).c_str(),
           s.ui.model.vismem.empty() ? "" : (" + VisMem " + s.ui.model.vismem).c_str());
  // The loaded model stays as it is; the session's VisMem adapter is offered in the Model view.
  if (!s.ui.model.vismem.empty() && ui_.model.vismem != s.ui.model.vismem) {
    model_->vismem_dir() = s.ui.model.vismem;
    log_info("the session's answers used the VisMem adapter %s: Model view > Load VisMem attaches it",
             s.ui.model.vismem.c_str());
  }
  (void)model;
  return true;
}

// ---- UI ----

void StudioApp::draw_menu() {
  if (!ImGui::BeginMainMenuBar()) return;
  if (ImGui::BeginMenu("File")) {
    if (ImGui::MenuItem("Open image...", "Ctrl+O")) image_->focus(), image_->browse();
    if (ImGui::MenuItem("Open model folder...")) {
      model_->focus();
      browser_.open("Open model folder", FileBrowser::Mode::OpenDir, (pvm::source_dir() + "/assets"), {},
                    [this](const std::string& p, std::string* e) {
                      std::string why;
                      if (!model_->load(p)) {
                        *e = "cannot load: see the log";
                        return false;
                      }
                      return true;
                    });
    }
    if (ImGui::MenuItem("Load VisMem adapter...")) {
      model_->focus();
      browser_.open("Load VisMem adapter", FileBrowser::Mode::OpenDir, pvm::source_dir(), {},
                    [this](const std::string& p, std::string* e) {
                      if (!model_->load_vismem(p)) {
                        *e = "cannot load: see the log";
                        return false;
                      }
                      return true;
                    });
    }
    if (ImGui::MenuItem("Remove VisMem adapter", nullptr, false, !ui_.model.vismem.empty() && !session_->busy()))
      model_->load_vismem("");
    if (ImGui::MenuItem("Load PVM adapter...")) {
      browser_.open("Load PVM adapter", FileBrowser::Mode::OpenDir, pvm::source_dir(), {},
                    [this](const std::string& p, std::string* e) {
                      if (!model_->load_adapter(p)) {
                        *e = "cannot load: see the log";
                        return false;
                      }
                      return true;
                    });
    }
    ImGui::Separator();
    if (ImGui::MenuItem("Save session...", "Ctrl+S"))
      browser_.open("Save session", FileBrowser::Mode::Save, "pvm-session", {},
                    [this](const std::string& p, std::string* e) { return save_session_to(p, e); });
    if (ImGui::MenuItem("Open session..."))
      browser_.open("Open session", FileBrowser::Mode::OpenDir, ".", {},
                    [this](const std::string& p, std::string* e) { return open_session(p, e); });
    if (ImGui::MenuItem("Export all plots..."))
      browser_.open("Export plots to folder", FileBrowser::Mode::Save, "pvm-plots", {},
                    [this](const std::string& p, std::string*) {
                      export_plots(p, false);
                      return true;
                    });
    ImGui::Separator();
    if (ImGui::MenuItem("Quit", "Ctrl+Q")) quit_ = true;
    ImGui::EndMenu();
  }
  if (ImGui::BeginMenu("View")) {
    for (View* v : view_ptrs_) {
      if (v->home_slot() == Slot::Floating) continue;
      if (ImGui::MenuItem(v->name().c_str(), nullptr, v->open_ptr())) {
        if (v->is_open()) v->focus();
        ImGui::MarkIniSettingsDirty();
      }
    }
    ImGui::Separator();
    if (ImGui::BeginMenu("Pop out")) {
      for (View* v : view_ptrs_) {
        if (v->home_slot() == Slot::Floating) continue;
        bool fl = v->slot() == Slot::Floating;
        if (ImGui::MenuItem(v->name().c_str(), nullptr, &fl)) {
          v->set_slot(fl ? Slot::Floating : v->home_slot());
          v->set_open(true);
          ImGui::MarkIniSettingsDirty();
        }
      }
      ImGui::EndMenu();
    }
    if (ImGui::MenuItem("Reset layout")) {
      fractions_ = LayoutFractions{};
      for (View* v : view_ptrs_)
        if (v->home_slot() != Slot::Floating) v->set_slot(v->home_slot()), v->set_open(true);
      ImGui::MarkIniSettingsDirty();
    }
    ImGui::EndMenu();
  }
  if (ImGui::BeginMenu("Help")) {
    if (ImGui::MenuItem("About")) about_->set_open(true);
    ImGui::EndMenu();
  }
  ImGui::EndMainMenuBar();
}

void StudioApp::draw_status() {
  const float h = ImGui::GetFrameHeight();
  const ImGuiWindowFlags flags = ImGuiWindowFlags_NoScrollbar | ImGuiWindowFlags_NoSavedSettings |
                                 ImGuiWindowFlags_MenuBar | ImGuiWindowFlags_NoNav;
  // A side bar shrinks the viewport's work area, so the layout never hides under it.
  if (ImGui::BeginViewportSideBar("##status", ImGui::GetMainViewport(), ImGuiDir_Down, h, flags)) {
    if (ImGui::BeginMenuBar()) {
      const EngineStatus& es = ui_.status;
      LogLine last = LogSink::instance().last(LogLevel::Info);
      // The engine's state while it works; otherwise the latest log line (errors stand out).
      std::string text = es.state != EngineStatus::Idle ? es.message : last.seq ? last.text : "ready";
      ImVec4 col = ImGui::GetStyleColorVec4(ImGuiCol_Text);
      if (es.state == EngineStatus::Idle && last.level == LogLevel::Error) col = ImVec4(1.0f, 0.45f, 0.42f, 1.0f);
      if (es.state == EngineStatus::Idle && last.level == LogLevel::Warn) col = ImVec4(0.98f, 0.78f, 0.30f, 1.0f);
      char right[320];
      const std::string model = ui_.model.loaded ? fs::path(ui_.model.dir).filename().string() : "-";
      std::snprintf(right, sizeof right, "%s%s  |  %.1f ms/frame", ui_.model.note.empty() ? "model: " : "RANDOM model: ",
                    model.c_str(), frame_ms());
      const float rw = ImGui::CalcTextSize(right).x;
      float avail = ImGui::GetContentRegionAvail().x - rw - ImGui::GetFontSize();
      if (es.state != EngineStatus::Idle && es.progress >= 0) {
        const float pw = ImGui::GetFontSize() * 8;
        ImGui::ProgressBar(es.progress, ImVec2(pw, h * 0.7f), "");
        ImGui::SameLine();
        avail -= pw + ImGui::GetStyle().ItemSpacing.x;
      }
      ImVec2 p = ImGui::GetCursorScreenPos();
      ImGui::PushClipRect(p, ImVec2(p.x + std::max(0.0f, avail), p.y + h), true);
      ImGui::TextColored(col, "%s", text.c_str());
      ImGui::PopClipRect();
      ImGui::SameLine(std::max(ImGui::GetCursorPosX(), ImGui::GetWindowWidth() - rw - ImGui::GetFontSize()));
      if (!ui_.model.note.empty())
        ImGui::TextColored(ImVec4(0.98f, 0.78f, 0.30f, 1.0f), "%s", right);
      else
        ImGui::TextDisabled("%s", right);
      if (ImGui::IsItemHovered() && !ui_.model.note.empty()) ImGui::SetTooltip("%s", ui_.model.note.c_str());
      ImGui::EndMenuBar();
    }
  }
  ImGui::End();
}

void StudioApp::draw_hosts() {
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  const LayoutRects rects = compute_layout(vp->WorkPos, vp->WorkSize, fractions_, ImGui::GetFontSize());
  const ImGuiWindowFlags host = ImGuiWindowFlags_NoTitleBar | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize |
                                ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoSavedSettings |
                                ImGuiWindowFlags_NoBringToFrontOnFocus | ImGuiWindowFlags_NoScrollbar |
                                ImGuiWindowFlags_NoScrollWithMouse;
  for (int s = 0; s < kTiledSlots; ++s) {
    std::vector<View*> vs;
    for (View* v : view_ptrs_)
      if (v->is_open() && v->slot() == Slot(s)) vs.push_back(v);
    if (vs.empty()) continue;
    ImGui::SetNextWindowPos(rects.slot[s].pos);
    ImGui::SetNextWindowSize(rects.slot[s].size);
    ImGui::SetNextWindowBgAlpha(0.0f);  // glClear paints it (software GL pays per background pixel)
    char id[32];
    std::snprintf(id, sizeof id, "##host%d", s);
    ImGui::PushStyleVar(ImGuiStyleVar_WindowPadding, ImVec2(6, 4));
    ImGui::Begin(id, nullptr, host);
    ImGui::PopStyleVar();
    if (ImGui::BeginTabBar("##tabs", ImGuiTabBarFlags_FittingPolicyScroll | ImGuiTabBarFlags_NoCloseWithMiddleMouseButton)) {
      for (View* v : vs) {
        const ImGuiTabItemFlags f = v->take_focus_request() ? ImGuiTabItemFlags_SetSelected : 0;
        const bool open = ImGui::BeginTabItem(v->name().c_str(), nullptr, f);
        if (ImGui::BeginPopupContextItem()) {
          if (ImGui::MenuItem("Pop out")) v->set_slot(Slot::Floating), ImGui::MarkIniSettingsDirty();
          if (ImGui::MenuItem("Close")) v->set_open(false), ImGui::MarkIniSettingsDirty();
          ImGui::EndPopup();
        }
        if (open) {
          if (selected_[s] != v->name()) selected_[s] = v->name(), ImGui::MarkIniSettingsDirty();
          ImGui::BeginChild("##body", ImVec2(0, 0), false);
          v->draw();
          ImGui::EndChild();
          ImGui::EndTabItem();
        }
      }
      ImGui::EndTabBar();
    }
    ImGui::End();
  }
  if (layout_splitters(rects, vp->WorkPos, vp->WorkSize, &fractions_)) ImGui::MarkIniSettingsDirty();
  // Popped-out views and dialogs.
  for (View* v : view_ptrs_) {
    if (!v->is_open() || v->slot() != Slot::Floating) continue;
    if (v->owns_window()) {
      v->draw();
      continue;
    }
    ImGui::SetNextWindowSize(ImVec2(ImGui::GetFontSize() * 40, ImGui::GetFontSize() * 28), ImGuiCond_FirstUseEver);
    bool open = true;
    if (ImGui::Begin(v->name().c_str(), &open, v->window_flags())) {
      if (ImGui::BeginPopupContextItem("##float_ctx")) {
        if (ImGui::MenuItem("Dock back")) v->set_slot(v->home_slot()), v->focus();
        ImGui::EndPopup();
      }
      v->draw();
    }
    ImGui::End();
    if (!open) v->set_slot(v->home_slot()), v->focus();  // closing a popped-out view docks it back
  }
}

void StudioApp::build_ui() {
  ImGuiIO& io = ImGui::GetIO();
  if (io.KeyCtrl && ImGui::IsKeyPressed(GLFW_KEY_Q)) quit_ = true;
  if (io.KeyCtrl && ImGui::IsKeyPressed(GLFW_KEY_S) && !browser_.is_open())
    browser_.open("Save session", FileBrowser::Mode::Save, "pvm-session", {},
                  [this](const std::string& p, std::string* e) { return save_session_to(p, e); });
  if (io.KeyCtrl && ImGui::IsKeyPressed(GLFW_KEY_O)) image_->focus(), image_->browse();
  for (const std::string& f : dropped_) {
    std::error_code ec;
    if (fs::is_directory(f, ec) && fs::exists(fs::path(f) / "session.json", ec)) {
      std::string err;
      if (!open_session(f, &err)) log_error("%s", err.c_str());
    } else if (fs::is_directory(f, ec) && fs::exists(fs::path(f) / "adapter_config.json", ec)) {
      if (is_vismem_adapter(f))
        model_->load_vismem(f), model_->focus();
      else
        model_->load_adapter(f);
    } else if (image_->open_file(f)) {
      image_->focus();
    }
  }
  dropped_.clear();
  draw_menu();
  draw_status();
  draw_hosts();
  browser_.draw();
}

// ---- start-up, demo, bench ----

void StudioApp::start_up() {
  for (const std::string& name : opt_.focus) {
    auto it = std::find_if(view_ptrs_.begin(), view_ptrs_.end(), [&](View* v) { return v->name() == name; });
    if (it == view_ptrs_.end()) {
      std::fprintf(stderr, "pvm-studio: error: --focus: no view named '%s'\n", name.c_str());
      startup_failed_ = true;
      continue;
    }
    (*it)->set_open(true), (*it)->focus();
  }
  if (opt_.map_mode >= 0) dmap_->mode = DilutionMapView::Mode(opt_.map_mode);
  if (opt_.replay_speed > 0) replay_->clock.speed = opt_.replay_speed;
  if (opt_.bench_frames > 0) {
    fill_bench_trace();
    return;
  }
  std::string why;
  startup_t0_ = Clock::now();
  ctx_.draft.vismem_invoke = opt_.vismem_invoke;
  ctx_.draft.vismem_p = float(opt_.vismem_p);
  ctx_.draft.vismem_max = opt_.vismem_max;
  if (model_->load(opt_.model, opt_.pvm, &why, opt_.vismem))  // "" = default model (random tiny one when absent)
    startup_pending_ = headless() && opt_.bench_frames == 0;
  else if (headless())
    return startup_error(why);
  // The default model was trained on the scenes world: open on its instruction, not the generic preset.
  if (opt_.model.empty() && std::filesystem::exists((pvm::source_dir() + "/assets/default-model/config.json")))
    prompt_->use_preset("scene_description");
  if (!opt_.open.empty()) {
    std::string err;
    if (!open_session(opt_.open, &err)) {
      log_error("%s", err.c_str());
      if (headless()) startup_error(err);
      else std::fprintf(stderr, "pvm-studio: error: %s\n", err.c_str());
    }
    return;
  }
  if (!opt_.image.empty()) {
    if (!image_->open_file(opt_.image, &why) && headless()) return startup_error(why);
  } else if (!image_->new_scene(7)) {
    image_->open_file((pvm::source_dir() + "/assets/samples/shapes.png"));
  }
  if (opt_.demo) {
    ctx_.draft.max_new_tokens = opt_.demo_tokens;
    ctx_.draft.stop_at_eos = !opt_.demo_no_stop;
    ctx_.draft.baseline = opt_.demo_baseline, ctx_.draft.pvm = opt_.demo_pvm, ctx_.draft.vismem = opt_.demo_vismem;
    if (opt_.bench_generate > 0)  // the probes of `pvm generate --probe`, so both sides do the same work
      ctx_.draft.per_head = false, ctx_.draft.heatmap = false, ctx_.draft.logit_lens = false;
    else if (opt_.per_head)
      ctx_.draft.per_head = true;
    demo_t0_ = Clock::now();
    demo_state_ = 1;
  }
}

// Scripted demo: wait for the model, generate both sides, pin a token, then let the frame counter
// run out. Returns false when something failed (the caller exits 1).
bool StudioApp::demo_step(int frame) {
  const double el = std::chrono::duration<double>(Clock::now() - demo_t0_).count();
  if (demo_state_ > 0 && demo_state_ < 3 && el > opt_.demo_timeout_s) {
    std::fprintf(stderr, "pvm-studio: error: demo did not finish within %d s (%s)\n", opt_.demo_timeout_s,
                 ui_.status.message.c_str());
    return false;
  }
  if (demo_state_ == 1 && !session_->busy()) {
    if (!ui_.model.loaded) {
      std::fprintf(stderr, "pvm-studio: error: demo: the model did not load: %s\n", ui_.status.error.c_str());
      return false;
    }
    if (!prompt_->generate()) {
      std::fprintf(stderr, "pvm-studio: error: demo: generation refused (see the log)\n");
      return false;
    }
    demo_state_ = 2;
  } else if (demo_state_ == 2 && !session_->busy() && ui_.status.state == EngineStatus::Idle &&
             !ui_.side[1].running && !ui_.side[0].running && !ui_.side[2].running) {
    if (!ui_.status.error.empty()) {
      std::fprintf(stderr, "pvm-studio: error: demo: %s\n", ui_.status.error.c_str());
      return false;
    }
    // Pin a token in the middle of the PVM answer: overlays and cursors show in the screenshot.
    const int n = int(ui_.side[1].tokens.size() ? ui_.side[1].tokens.size() : ui_.side[0].tokens.size());
    ctx_.sel.side = ui_.side[1].tokens.empty() ? Side::Baseline : Side::Pvm;
    ctx_.sel.token = n / 2;
    ctx_.sel.pinned = n > 0;
    demo_state_ = 3;
    demo_done_frame_ = frame;
    size_t memories = 0;
    for (const TokenRec& t : ui_.side[2].tokens) memories += !t.invoked.empty();
    if (!ui_.model.vismem.empty())
      std::printf("demo: baseline %zu tokens, PVM %zu tokens, VisMem %zu tokens (%zu memories) in %.1f s\n",
                  ui_.side[0].tokens.size(), ui_.side[1].tokens.size(), ui_.side[2].tokens.size(), memories, el);
    else
      std::printf("demo: baseline %zu tokens, PVM %zu tokens in %.1f s\n", ui_.side[0].tokens.size(),
                  ui_.side[1].tokens.size(), el);
  }
  return true;
}

// A long --bench-generate (thousands of tokens on a 2B model) says how far it is every 30 s, on stderr.
void StudioApp::bench_progress() {
  const auto now = Clock::now();
  if (std::chrono::duration<double>(now - gen_progress_).count() < 30) return;
  gen_progress_ = now;
  size_t done = 0, sides = 0;
  for (const SideData& sd : ui_.side) done += sd.tokens.size();
  sides = size_t(opt_.demo_baseline) + size_t(opt_.demo_pvm) + size_t(opt_.demo_vismem && !ui_.model.vismem.empty());
  const size_t want = std::max<size_t>(1, sides) * size_t(opt_.bench_generate);
  const double el = std::chrono::duration<double>(now - gen_start_).count(), rate = el > 0 ? double(done) / el : 0;
  std::vector<double> w = gen_frames_.work_ms;
  std::sort(w.begin(), w.end());
  const std::string eta = rate > 0 ? std::to_string(int64_t(double(want > done ? want - done : 0) / rate)) + " s" : "unknown";
  std::fprintf(stderr, "bench-generate: %zu/%zu tokens, %.2f tokens/s, %.0f s (model load included), ETA %s; frame work p95 so far %.1f ms\n",
               done, want, rate, el, eta.c_str(), w.empty() ? 0.0 : w[std::min(w.size() - 1, size_t(0.95 * double(w.size())))]);
}

std::string StudioApp::status_text() const {
  const EngineStatus& es = ui_.status;
  const LogLine last = LogSink::instance().last(LogLevel::Info);
  return es.state != EngineStatus::Idle ? es.message : last.seq ? last.text : "ready";
}

void StudioApp::step_compare() {
  if (!compare_pending_ || session_->busy() || ui_.status.state != EngineStatus::Idle) return;
  compare_pending_ = false;
  if (ui_.model.adapter != compare_adapter_) return;  // the load failed: its error is in the status line
  compare_->focus();
  if (prompt_->generate()) log_info("adapter %s loaded: generating baseline and PVM to compare", compare_adapter_.c_str());
}

// --train-set KEY=VALUE: the value as JSON when it parses to the field's type, else as text.
bool StudioApp::apply_train_set() {
  auto& values = training_->form().values;
  for (const std::string& kv : opt_.train_set) {
    const std::string key = kv.substr(0, kv.find('=')), text = kv.substr(kv.find('=') + 1);
    auto it = values.find(key);
    if (it == values.end()) {
      std::fprintf(stderr, "pvm-studio: error: --train-set: no training field '%s'\n", key.c_str());
      return false;
    }
    const nlohmann::json v = nlohmann::json::parse(text, nullptr, false);
    nlohmann::json& dst = it->second;
    if (dst.is_string())
      dst = text;
    else if (dst.is_number_integer() && !v.is_discarded() && v.is_number_integer())
      dst = v;
    else if (dst.is_number_float() && !v.is_discarded() && v.is_number())
      dst = v.get<double>();
    else if (dst.is_boolean() && !v.is_discarded() && v.is_boolean())
      dst = v;
    else {
      std::fprintf(stderr, "pvm-studio: error: --train-set %s: expected a value like %s\n", kv.c_str(), dst.dump().c_str());
      return false;
    }
  }
  return true;
}

bool StudioApp::script_step(int frame) {
  if (!opt_.scripted() || script_state_ >= 3) return true;
  const double el = std::chrono::duration<double>(Clock::now() - script_t0_).count();
  if (script_state_ > 0 && el > opt_.demo_timeout_s) {
    std::fprintf(stderr, "pvm-studio: error: scripted run did not finish within %d s (%s)\n", opt_.demo_timeout_s,
                 status_text().c_str());
    return false;
  }
  auto done = [&] {
    script_state_ = 3;
    script_done_frame_ = frame;
  };
  if (script_state_ == 0) {
    if (startup_pending_ || session_->busy()) return true;
    if (!ui_.model.loaded) {
      std::fprintf(stderr, "pvm-studio: error: the model did not load: %s\n", ui_.status.error.c_str());
      return false;
    }
    script_t0_ = Clock::now();
    std::string why;
    if (opt_.batch()) {
      batch_->use_folder = !opt_.batch_images.empty();
      batch_->folder = opt_.batch_images;
      batch_->form.scenes = std::max(1, opt_.batch_scenes);
      batch_->form.scene_seed = opt_.batch_seed;
      batch_->form.max_new_tokens = opt_.batch_tokens;
      if (!opt_.batch_out.empty()) batch_->form.out_dir = opt_.batch_out;
      batch_->focus();
      if (!batch_->start(&why)) {
        std::fprintf(stderr, "pvm-studio: error: %s\n", why.c_str());
        return false;
      }
    } else if (opt_.train_launch) {
      training_->fit_to_model(ui_.model);
      if (opt_.train_scenes > 0) training_->scenes.count = opt_.train_scenes;
      ctx_.draft.max_new_tokens = opt_.demo_tokens;  // the comparison after the run (--demo-tokens, 64)
      if (!apply_train_set()) return false;
      training_->focus();
      if (!training_->launch_new()) {
        std::fprintf(stderr, "pvm-studio: error: the training run did not start: %s\n", status_text().c_str());
        return false;
      }
    } else {
      model_->focus();
      model_->cancel_at = opt_.load_cancel_at;
      model_->select(opt_.select_model);  // refused up front (not a checkpoint): the status line says why
    }
    script_state_ = 1;
    return true;
  }
  if (opt_.batch()) {
    const BatchData& b = ui_.batch;
    if (opt_.batch_cancel_after > 0 && b.running && !script_cancel_sent_ && int(b.answers.size()) >= opt_.batch_cancel_after) {
      session_->stop();
      script_cancel_sent_ = true;
    }
    if (b.id > 0 && !b.running && !session_->busy() && ui_.status.state == EngineStatus::Idle) {
      std::printf("batch: %s, %zu answers, %zu images, %lld tokens in %.1f s (%.1f tokens/s); %s\n", b.finish.c_str(),
                  b.answers.size(), b.images.size(), (long long)b.tokens_done, b.elapsed_s, b.tokens_per_s,
                  b.settings.out_dir.c_str());
      if (b.finish == "error") {
        std::fprintf(stderr, "pvm-studio: error: batch: %s\n", ui_.status.error.c_str());
        return false;
      }
      done();
    }
    return true;
  }
  if (opt_.train_launch) {
    if (script_state_ == 1) {
      if (training_->working()) return true;
      std::printf("train: exit %d after %.1f s, run %s\n", training_->trainer_exit_code(), el, training_->run_dir().c_str());
      if (training_->trainer_exit_code() != 0) {
        std::fprintf(stderr, "pvm-studio: error: the training run failed: %s\n", status_text().c_str());
        return false;
      }
      if (!opt_.train_compare) return done(), true;
      if (!training_->load_adapter_and_compare()) return false;
      script_state_ = 2;
      return true;
    }
    if (compare_pending_ || session_->busy() || ui_.side[0].running || ui_.side[1].running) return true;
    std::printf("compare: adapter %s, baseline %zu tokens, PVM %zu tokens\n", ui_.model.adapter.c_str(),
                ui_.side[0].tokens.size(), ui_.side[1].tokens.size());
    if (ui_.side[1].tokens.empty()) {
      std::fprintf(stderr, "pvm-studio: error: no PVM answer after loading the adapter: %s\n", status_text().c_str());
      return false;
    }
    done();
    return true;
  }
  // --select-model [--load-selected]
  if (session_->busy()) return true;
  const LoadPlan& p = ui_.plan;
  if (opt_.load_selected && !script_load_started_ && p.ready && p.dir == opt_.select_model) {
    script_load_started_ = true;
    std::printf("plan: %s: %s; needs %lld bytes (weights %lld), available %lld\n", p.dir.c_str(), p.summary.c_str(),
                (long long)p.need_bytes, (long long)p.weight_bytes, (long long)p.available_bytes);
    if (!model_->load(opt_.select_model)) return false;
    return true;
  }
  if (!script_load_started_)
    std::printf("plan: %s: %s; needs %lld bytes (weights %lld), available %lld\n", p.dir.c_str(),
                p.ready ? p.summary.c_str() : ("cannot load: " + p.error).c_str(), (long long)p.need_bytes,
                (long long)p.weight_bytes, (long long)p.available_bytes);
  else
    std::printf("load: %s at %.3f (%lld of %lld bytes); model loaded: %s, weights %lld bytes\n", ui_.load.state.c_str(),
                ui_.load.fraction, (long long)ui_.load.done_bytes, (long long)ui_.load.total_bytes,
                ui_.model.loaded ? ui_.model.dir.c_str() : "none", (long long)ui_.model.weight_bytes);
  done();
  return true;
}

// 16384 tokens x 36 layers on both sides, PVM probes on 3 layers: what a long run looks like to
// the views (the frame-time budget is measured on this).
void StudioApp::fill_bench_trace() {
  const int L = 36, N = 16384, H = 32;
  // Per-head probes (37 M values) only when the Dilution map is shown: its layer x head map.
  const bool heads = std::find(opt_.focus.begin(), opt_.focus.end(), dmap_->name()) != opt_.focus.end();
  ui_.model.loaded = true;
  ui_.model.dir = "synthetic-trace";
  ui_.model.note = "benchmark: synthetic 16k-token trace";
  ui_.model.layers = L;
  ui_.model.heads = H;
  ui_.model.pvm_layers = {8, 16, 24};
  const char* words[] = {"The ", "image ", "shows ", "a ", "red ", "circle ", "in ", "the ", "upper ", "left ",
                         "corner, ", "next ", "to ", "blue ", "square.\n"};
  for (int s = 0; s < 2; ++s) {
    SideData& sd = ui_.side[s];
    sd.tokens.resize(N);
    for (int i = 0; i < N; ++i) {
      TokenRec& t = sd.tokens[i];
      t.id = i % 1000;
      t.piece = words[i % 15];
      t.mass.resize(L);
      t.mass_nosink.resize(L);
      for (int l = 0; l < L; ++l) {
        const double t0 = 12.0 * std::pow(1.14, l) * (s ? 3.0 : 1.0);
        const double c = t0 * (0.92 - 0.018 * l);
        const double noise = 1.0 + 0.05 * std::sin(i * 0.37 + l * 1.7);
        t.mass[l] = float(c / (i + 1 + t0) * noise);
        t.mass_nosink[l] = t.mass[l] * 0.8f;
      }
      if (s) {
        for (int j = 0; j < 3; ++j) {
          t.pvm_gate.push_back(0.2f + 0.1f * j);
          t.pvm_ratio.push_back(float(0.05 + 0.02 * j + 0.01 * std::sin(i * 0.01 + j)));
          t.pvm_entropy.push_back(float(3.5 + 0.3 * std::sin(i * 0.003 + j)));
        }
      }
      t.lens_first = 20 + int(8 * std::sin(i * 0.05 + s));
      if (heads) {
        t.mass_heads.assign(L, std::vector<float>(H));
        for (int l = 0; l < L; ++l)
          for (int h = 0; h < H; ++h) t.mass_heads[l][h] = t.mass[l] * (0.25f + 1.5f * float((h * 7 + l * 3) % 32) / 31.0f);
      }
      sd.text += t.piece;
    }
    sd.finish = "length";
  }
  ui_.run_id = uint64_t(1) << 40;
  ui_.restored = true;
  dilution_->layer_mode = DilutionView::All;  // worst case: 72 curves of 16k points + means + fits
  ctx_.sel.token = N / 2;
  ctx_.sel.side = Side::Pvm;
  ctx_.sel.pinned = true;
  log_info("bench: synthetic trace of %d tokens x %d layers on both sides", N, L);
}

// ---- loop ----

int StudioApp::run() {
  LogSink::instance().set_echo_stderr(opt_.verbose);
  if (int rc = init_window()) return rc;
  init_imgui();
  session_ = std::make_unique<Session>(opt_.model_threads);
  create_views();
  about_->gl_renderer = reinterpret_cast<const char*>(glGetString(GL_RENDERER));
  about_->gl_version = reinterpret_cast<const char*>(glGetString(GL_VERSION));
  about_->glfw_version = glfwGetVersionString();
  register_ini_handler();
  g_app = this;
  glfwSetDropCallback(win_, [](GLFWwindow*, int n, const char** paths) {
    if (g_app)
      for (int i = 0; i < n; ++i) g_app->dropped_.push_back(paths[i]);
  });

  log_info("PVM Studio %s, OpenGL %s (%s)", pvm::version().c_str(), about_->gl_version.c_str(), about_->gl_renderer.c_str());
  if (!(ImGui::GetIO().BackendFlags & ImGuiBackendFlags_RendererHasVtxOffset))
    log_warn("renderer lacks large-mesh support (GL < 3.2): very dense plots may draw incompletely");
  if (!ini_path_.empty()) log_debug("layout file %s", ini_path_.c_str());
  start_up();

  const int warmup = 5;
  const bool demo = opt_.demo;
  const int total_frames = opt_.bench_frames > 0 ? warmup + opt_.bench_frames : opt_.frames;
  FrameStats bench;
  int rc = 0, frame = 0, idle_frames = 0;
  // The demo and the scripted runs know their last frame once they have finished.
  int shot_frame = demo || opt_.scripted() ? -1 : total_frames;
  std::signal(SIGINT, on_quit_signal);
  std::signal(SIGTERM, on_quit_signal);
  while (!quit_ && !g_quit_signal && !glfwWindowShouldClose(win_) && !startup_failed_) {
    // Interactive and idle: sleep until input (or 0.25 s, so streaming tokens and log lines show).
    const bool working = session_->busy();
    if (!headless() && idle_frames > 30 && !working)
      glfwWaitEventsTimeout(0.25);
    else if ((!headless() || opt_.bench_generate > 0 || opt_.scripted()) && working)
      glfwWaitEventsTimeout(1.0 / streaming_fps());  // streaming: leave the CPU to the model; input wakes at once
    else
      glfwPollEvents();
    const auto t0 = Clock::now();
    const double cpu0 = process_cpu_ms();
    if (opt_.bench_generate > 0 && working) {
      if (gen_prev_ > 0) gen_frames_.interval_ms.push_back(std::chrono::duration<double, std::milli>(t0 - gen_t0_).count());
      else gen_start_ = gen_progress_ = t0;
      gen_t0_ = t0, gen_prev_ = 1;
    }
    if (!bench_data_ && opt_.bench_frames == 0) session_->sync(ui_);
    if (startup_pending_) {
      // The screenshot waits for the command line's model: a failed load is the run's error.
      if (!session_->busy()) {
        startup_pending_ = false;
        session_->sync(ui_);  // what the finished job left (the sync above may have come just before it ended)
        if (!ui_.model.loaded) {
          startup_error(ui_.status.error.empty() ? "the model did not load" : ui_.status.error);
          break;
        }
        // Headless, a --vismem adapter that did not attach fails the run like a bad --pvm (no
        // screenshot without the asked arm); interactive, the studio goes on without it.
        if (!opt_.vismem.empty() && ui_.model.vismem.empty()) {
          startup_error(ui_.status.error.empty() ? opt_.vismem + ": the VisMem adapter did not load" : ui_.status.error);
          break;
        }
      } else if (std::chrono::duration<double>(Clock::now() - startup_t0_).count() > opt_.demo_timeout_s) {
        startup_error("the model did not load within " + std::to_string(opt_.demo_timeout_s) + " s");
        break;
      } else if (!demo && !opt_.scripted()) {
        // No export (at shot_frame - 2) or screenshot before the load has answered.
        shot_frame = std::max(shot_frame, frame + std::max(opt_.frames, 3) + 2);
      }
    }
    step_compare();
    if (!script_step(frame)) {
      rc = 1;
      break;
    }
    if (script_done_frame_ >= 0 && shot_frame < 0) shot_frame = script_done_frame_ + std::max(opt_.frames, 4);
    if (demo) {
      if (!demo_step(frame)) {
        rc = 1;
        break;
      }
      if (demo_done_frame_ >= 0 && shot_frame < 0) shot_frame = demo_done_frame_ + std::max(opt_.frames, 4);
      if (headless() && opt_.screenshot.empty() && demo_state_ == 3) break;
    }
    if (!replay_started_ && !startup_pending_ && (demo ? demo_state_ == 3 : frame >= 1) && opt_.bench_frames == 0 &&
        (!opt_.replay_export.empty() || opt_.replay_play)) {
      replay_started_ = true;
      if (!opt_.replay_export.empty() && !replay_->start_export(opt_.replay_export, opt_.replay_stride, true)) rc = 1;
      if (opt_.replay_play && ui_.side[int(replay_->side)].tokens.size() + ui_.side[1 - int(replay_->side)].tokens.size()) {
        replay_->focus();
        replay_->clock.seek(0, 1), replay_->clock.playing = true;
      }
    }
    ImGui_ImplOpenGL3_NewFrame();
    ImGui_ImplGlfw_NewFrame();
    ImGuiIO& io = ImGui::GetIO();
    // Headless runs ignore the real pointer (Xvfb parks it mid-screen) so screenshots are stable.
    if (opt_.hover)
      io.MousePos = ImVec2(opt_.hover_x * io.DisplaySize.x, opt_.hover_y * io.DisplaySize.y);
    else if (headless())
      io.MousePos = ImVec2(-FLT_MAX, -FLT_MAX);
    if (opt_.bench_pan && frame >= 1) {  // slide the view so every frame re-decimates
      double x0, x1, y0, y1;
      dilution_->plot().view(&x0, &x1, &y0, &y1);
      const double d = (x1 - x0) * 0.002 * ((frame / 100) % 2 ? -1.0 : 1.0);
      dilution_->plot().set_view(x0 + d, x1 + d, y0, y1);
    }
    ImGui::NewFrame();
    build_ui();
    ImGui::Render();
    const double ui_ms = ms_since(t0);

    int fb_w, fb_h;
    glfwGetFramebufferSize(win_, &fb_w, &fb_h);
    glViewport(0, 0, fb_w, fb_h);
    glClearColor(kWindowBg.x, kWindowBg.y, kWindowBg.z, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
    run_captures();
    ++frame;
    // The gaze replay export renders one token per frame: the screenshot waits for it.
    if (replay_->exporting() && shot_frame > 0) shot_frame = std::max(shot_frame, frame + 3);
    if (replay_started_ && !opt_.replay_export.empty() && !replay_->exporting() && replay_->exported_frames() == 0 &&
        rc == 0) {
      std::fprintf(stderr, "pvm-studio: error: gaze replay export failed: %s\n", replay_->export_error().c_str());
      rc = 1;
    }
    if (shot_frame > 0 && frame == std::max(1, shot_frame - 2)) {
      if (!opt_.export_plot.empty()) {
        // Queued now, drawn and read back during the next frame.
        dilution_->plot().request_png(opt_.export_plot + ".png");
        std::string err;
        if (!dilution_->plot().save_csv(opt_.export_plot + ".csv", &err)) {
          std::fprintf(stderr, "pvm-studio: error: %s\n", err.c_str());
          rc = 1;
        }
      }
      if (!opt_.export_batch.empty()) {  // CSVs now, the PNG while the next frame is drawn
        std::string err;
        if (!batch_->export_files(opt_.export_batch, &err)) {
          std::fprintf(stderr, "pvm-studio: error: %s\n", err.c_str());
          rc = 1;
        }
      }
      if (!opt_.export_map.empty()) {  // CSVs now, the PNG while the next frame is drawn
        std::string err;
        if (!dmap_->export_files(opt_.export_map, &err)) {
          std::fprintf(stderr, "pvm-studio: error: %s\n", err.c_str());
          rc = 1;
        }
      }
      if (!opt_.save_session.empty()) {
        std::string err;
        if (save_session_to(opt_.save_session, &err)) {
          std::printf("session: %s\n", opt_.save_session.c_str());
        } else {
          std::fprintf(stderr, "pvm-studio: error: %s\n", err.c_str());
          rc = 1;
        }
      }
    }

    if (!opt_.screenshot.empty() && frame == shot_frame) {
      if (opt_.scripted()) std::printf("status: %s\n", status_text().c_str());
      std::string err;
      if (save_framebuffer_png(0, 0, fb_w, fb_h, opt_.screenshot, &err)) {
        std::printf("screenshot: %s (%dx%d)\n", opt_.screenshot.c_str(), fb_w, fb_h);
        if (fb_w != opt_.width || fb_h != opt_.height)
          std::fprintf(stderr, "pvm-studio: warning: window is %dx%d, not the requested %dx%d\n", fb_w, fb_h,
                       opt_.width, opt_.height);
      } else {
        std::fprintf(stderr, "pvm-studio: error: %s\n", err.c_str());
        rc = 1;
      }
    }
    glfwSwapBuffers(win_);
    if (opt_.bench_frames > 0) glFinish();  // count the rasterization, not just its submission

    const double total_ms = ms_since(t0);
    if (frame > 3) {  // the first frames build fonts and shaders
      if (recent_ms_.size() < 60)
        recent_ms_.push_back(total_ms);
      else
        recent_ms_[recent_next_++ % 60] = total_ms;
    }
    if (opt_.bench_generate > 0 && working) {
      gen_frames_.fps = streaming_fps();
      gen_frames_.work_ms.push_back(total_ms);
      bench_progress();
    }
    if (opt_.bench_frames > 0 && frame > warmup) {
      bench.total.push_back(total_ms);
      bench.ui.push_back(ui_ms);
      bench.cpu.push_back(process_cpu_ms() - cpu0);
      const PlotStats& ps = dilution_->plot().stats();
      if (ps.recomputed) bench.decimate.push_back(ps.decimate_ms), bench.raster.push_back(ps.raster_ms);
    }
    const bool input = io.MouseDelta.x != 0 || io.MouseDelta.y != 0 || io.MouseWheel != 0 || ImGui::IsAnyMouseDown() ||
                       io.InputQueueCharacters.Size > 0 || io.KeyCtrl || io.KeyShift || io.KeyAlt;
    idle_frames = input ? 0 : idle_frames + 1;
    if (headless() && shot_frame > 0 && frame >= shot_frame && (opt_.bench_frames == 0 || frame >= total_frames)) break;
  }

  if (opt_.bench_frames > 0) {
    const PlotStats& ps = dilution_->plot().stats();
    int fb_w, fb_h;
    glfwGetFramebufferSize(win_, &fb_w, &fb_h);
    std::printf(
        "bench: %zu frames at %dx%d on %s%s%s: frame mean %.2f ms, p95 %.2f ms, max %.2f ms | ui build mean %.2f ms, "
        "p95 %.2f ms | process cpu mean %.2f ms, p95 %.2f ms | dilution plot: %zu series points -> %zu drawn (%s)\n"
        "bench: plot re-drawn in %zu of those frames: decimation mean %.2f ms, rasterization+upload mean %.2f ms\n",
        bench.total.size(), fb_w, fb_h, about_->gl_renderer.c_str(), opt_.bench_pan ? ", panning" : "",
        opt_.hover ? ", hover" : "", FrameStats::mean(bench.total), FrameStats::pct(bench.total, 0.95),
        FrameStats::pct(bench.total, 1.0), FrameStats::mean(bench.ui), FrameStats::pct(bench.ui, 0.95), FrameStats::mean(bench.cpu),
        FrameStats::pct(bench.cpu, 0.95), ps.points_total, ps.points_drawn,
        dilution_->plot().raster() ? "raster layer" : "ImDrawList polylines", bench.decimate.size(),
        FrameStats::mean(bench.decimate), FrameStats::mean(bench.raster));
  }
  if (opt_.bench_generate > 0 && rc == 0 && !quit_ && !g_quit_signal)
    rc = report_generate_bench(ui_, ui_.settings, gen_frames_, opt_.bench_cli, opt_.bench_json);
  shutdown();
  return rc ? rc : startup_failed_ ? 1 : 0;
}

}  // namespace

int run_studio(const StudioOptions& opt) {
  StudioApp app(opt);
  return app.run();
}

}  // namespace pvm::studio
