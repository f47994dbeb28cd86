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

#include "app/studio/layout.h"
#include "app/studio/path_prompt.h"
#include "engine/base/version.h"
#include "imgui.h"
#include "imgui_impl_glfw.h"
#include "imgui_impl_opengl3.h"
#include "imgui_internal.h"
#include "views/capture.h"
#include "views/fonts.h"
#include "views/view_about.h"
#include "views/view_dilution_demo.h"
#include "views/view_log.h"

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
  void register_ini_handler();
  void build_ui();
  void draw_menu();
  void draw_status();
  bool open_image(const std::string& path, std::string* err);
  bool open_model(const std::string& path, std::string* err);
  bool export_session(const std::string& path, std::string* err);
  bool headless() const { return !opt_.screenshot.empty() || opt_.bench_frames > 0; }

  StudioOptions opt_;
  GLFWwindow* win_ = nullptr;
  std::string ini_path_;
  std::vector<std::unique_ptr<View>> views_;
  std::vector<View*> view_ptrs_;
  AboutView* about_ = nullptr;
  DilutionDemoView* demo_ = nullptr;
  WindowPlacer placer_;
  PathPrompt prompt_;
  bool quit_ = false;
  // Recent frame times (work only, not the idle wait) for the status line.
  std::vector<double> recent_ms_;
  size_t recent_next_ = 0;
  double frame_ms() const { return FrameStats::mean(recent_ms_); }

  // What the user has opened; the engine session will own this later.
  std::string image_path_, model_path_;
  int image_w_ = 0, image_h_ = 0;

  struct IniView {
    int open = -1, user_placed = 0;
  };
  std::map<std::string, IniView> ini_views_;
};

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
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();  // writes the ini, which asks the views for their state
  view_ptrs_.clear();
  views_.clear();  // views own GL textures: free them while the context is alive
  glfwDestroyWindow(win_);
  glfwTerminate();
}

// [PvmStudio][<view>] entries: open state and whether the user placed the window, so a layout
// the user arranged survives restarts while untouched windows follow the default layout.
void StudioApp::register_ini_handler() {
  ImGuiSettingsHandler h;
  h.TypeName = "PvmStudio";
  h.TypeHash = ImHashStr("PvmStudio");
  h.UserData = this;
  h.ReadOpenFn = [](ImGuiContext*, ImGuiSettingsHandler* hd, const char* name) -> void* {
    return &static_cast<StudioApp*>(hd->UserData)->ini_views_[name];
  };
  h.ReadLineFn = [](ImGuiContext*, ImGuiSettingsHandler*, void* entry, const char* line) {
    auto* e = static_cast<IniView*>(entry);
    int v;
    if (std::sscanf(line, "Open=%d", &v) == 1) e->open = v;
    if (std::sscanf(line, "UserPlaced=%d", &v) == 1) e->user_placed = v;
  };
  h.ApplyAllFn = [](ImGuiContext*, ImGuiSettingsHandler* hd) {
    auto* app = static_cast<StudioApp*>(hd->UserData);
    for (View* v : app->view_ptrs_) {
      auto it = app->ini_views_.find(v->name());
      if (it == app->ini_views_.end()) continue;
      if (it->second.open >= 0 && v->slot() != Slot::Floating) v->set_open(it->second.open != 0);
      app->placer_.set_user_placed(v->name(), it->second.user_placed != 0);
    }
    if (app->opt_.demo || app->opt_.bench_frames > 0) app->demo_->set_open(true);
  };
  h.WriteAllFn = [](ImGuiContext*, ImGuiSettingsHandler* hd, ImGuiTextBuffer* out) {
    auto* app = static_cast<StudioApp*>(hd->UserData);
    for (View* v : app->view_ptrs_) {
      if (v->slot() == Slot::Floating) continue;
      out->appendf("[%s][%s]\nOpen=%d\nUserPlaced=%d\n\n", hd->TypeName, v->name().c_str(), v->is_open() ? 1 : 0,
                   app->placer_.user_placed(v->name()) ? 1 : 0);
    }
  };
  ImGui::GetCurrentContext()->SettingsHandlers.push_back(h);
}

// ---- UI ----

void StudioApp::draw_menu() {
  if (!ImGui::BeginMainMenuBar()) return;
  if (ImGui::BeginMenu("File")) {
    if (ImGui::MenuItem("Open image...", "Ctrl+O"))
      prompt_.open("Open image", "Image file (PNG, JPEG, BMP, ...):", image_path_,
                   [this](const std::string& p, std::string* e) { return open_image(p, e); });
    if (ImGui::MenuItem("Open model..."))
      prompt_.open("Open model", "Model directory (config.json + *.safetensors):", model_path_,
                   [this](const std::string& p, std::string* e) { return open_model(p, e); });
    if (ImGui::MenuItem("Export session..."))
      prompt_.open("Export session", "Write the session (JSON) to:", "pvm-session.json",
                   [this](const std::string& p, std::string* e) { return export_session(p, e); });
    ImGui::Separator();
    if (ImGui::MenuItem("Quit", "Ctrl+Q")) quit_ = true;
    ImGui::EndMenu();
  }
  if (ImGui::BeginMenu("View")) {
    for (View* v : view_ptrs_) {
      if (v->slot() == Slot::Floating) continue;
      if (ImGui::MenuItem(v->name().c_str(), nullptr, v->open_ptr())) ImGui::MarkIniSettingsDirty();
    }
    ImGui::Separator();
    if (ImGui::MenuItem("Reset layout")) placer_.reset();
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
      LogLine last = LogSink::instance().last(LogLevel::Info);
      const ImVec4 col = last.level == LogLevel::Error  ? ImVec4(1.0f, 0.45f, 0.42f, 1.0f)
                         : last.level == LogLevel::Warn ? ImVec4(0.98f, 0.78f, 0.30f, 1.0f)
                                                        : ImGui::GetStyleColorVec4(ImGuiCol_Text);
      char right[256];
      std::snprintf(right, sizeof right, "image: %s  |  model: %s  |  %.1f ms/frame",
                    image_path_.empty() ? "-" : fs::path(image_path_).filename().c_str(),
                    model_path_.empty() ? "-" : fs::path(model_path_).filename().c_str(), frame_ms());
      const float rw = ImGui::CalcTextSize(right).x;
      const float avail = ImGui::GetContentRegionAvail().x - rw - ImGui::GetFontSize();
      // The latest log line, clipped so it never runs into the right-hand block.
      ImVec2 p = ImGui::GetCursorScreenPos();
      ImGui::PushClipRect(p, ImVec2(p.x + std::max(0.0f, avail), p.y + h), true);
      ImGui::TextColored(col, "%s", last.seq ? last.text.c_str() : "ready");
      ImGui::PopClipRect();
      ImGui::SameLine(std::max(ImGui::GetCursorPosX(), ImGui::GetWindowWidth() - rw - ImGui::GetFontSize()));
      ImGui::TextDisabled("%s", right);
      ImGui::EndMenuBar();
    }
  }
  ImGui::End();
}

void StudioApp::build_ui() {
  ImGuiIO& io = ImGui::GetIO();
  if (io.KeyCtrl && ImGui::IsKeyPressed(GLFW_KEY_Q)) quit_ = true;
  if (io.KeyCtrl && ImGui::IsKeyPressed(GLFW_KEY_O))
    prompt_.open("Open image", "Image file (PNG, JPEG, BMP, ...):", image_path_,
                 [this](const std::string& p, std::string* e) { return open_image(p, e); });
  draw_menu();
  draw_status();
  placer_.begin_frame(view_ptrs_);
  for (View* v : view_ptrs_) {
    placer_.before_draw(*v);
    if (v->is_open() && placer_.tiled(*v)) ImGui::SetNextWindowBgAlpha(0.0f);  // glClear paints it
    v->draw();
  }
  placer_.end_frame(view_ptrs_);
  prompt_.draw();
}

// ---- actions (placeholders until the engine session exists) ----

bool StudioApp::open_image(const std::string& path, std::string* err) {
  int w = 0, h = 0, c = 0;
  if (!stbi_info(path.c_str(), &w, &h, &c)) {
    *err = path + ": " + (fs::exists(path) ? "not an image stb_image can read" : "no such file");
    return false;
  }
  image_path_ = path, image_w_ = w, image_h_ = h;
  log_info("image %s: %dx%d, %d channels (shown once the image view lands)", path.c_str(), w, h, c);
  return true;
}

bool StudioApp::open_model(const std::string& path, std::string* err) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    *err = path + ": no such file or directory";
    return false;
  }
  fs::path cfg = fs::is_directory(path, ec) ? fs::path(path) / "config.json" : fs::path(path);
  if (!fs::exists(cfg, ec)) {
    *err = path + ": no config.json in this directory";
    return false;
  }
  model_path_ = path;
  log_info("model %s selected; loading arrives with the engine session (use 'pvm' meanwhile)", path.c_str());
  return true;
}

bool StudioApp::export_session(const std::string& path, std::string* err) {
  nlohmann::json j;
  j["pvm_studio_version"] = pvm::version();
  j["image"] = image_path_.empty() ? nlohmann::json() : nlohmann::json{{"path", image_path_}, {"width", image_w_}, {"height", image_h_}};
  j["model"] = model_path_.empty() ? nlohmann::json() : nlohmann::json(model_path_);
  for (View* v : view_ptrs_) j["views"][v->name()] = v->is_open();
  double x0, x1, y0, y1;
  demo_->plot().view(&x0, &x1, &y0, &y1);
  j["dilution_demo"] = {{"view", {x0, x1, y0, y1}},
                        {"log_x", demo_->plot().x_scale() == AxisScale::Log10},
                        {"log_y", demo_->plot().y_scale() == AxisScale::Log10}};
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  if (!f) {
    *err = path + ": cannot write";
    return false;
  }
  log_info("session written to %s", path.c_str());
  return true;
}

// ---- loop ----

int StudioApp::run() {
  LogSink::instance().set_echo_stderr(opt_.verbose);
  if (int rc = init_window()) return rc;
  init_imgui();

  auto about = std::make_unique<AboutView>();
  auto demo = std::make_unique<DilutionDemoView>();
  about_ = about.get();
  demo_ = demo.get();
  about_->gl_renderer = reinterpret_cast<const char*>(glGetString(GL_RENDERER));
  about_->gl_version = reinterpret_cast<const char*>(glGetString(GL_VERSION));
  about_->glfw_version = glfwGetVersionString();
  if (opt_.vector_plots) demo_->plot().set_raster(false);
  views_.push_back(std::move(demo));
  views_.push_back(std::make_unique<LogView>());
  views_.push_back(std::move(about));
  for (auto& v : views_) view_ptrs_.push_back(v.get());
  register_ini_handler();

  log_info("PVM Studio %s, OpenGL %s (%s)", pvm::version().c_str(), about_->gl_version.c_str(), about_->gl_renderer.c_str());
  if (!(ImGui::GetIO().BackendFlags & ImGuiBackendFlags_RendererHasVtxOffset))
    log_warn("renderer lacks large-mesh support (GL < 3.2): very dense plots may draw incompletely");
  if (!ini_path_.empty()) log_debug("layout file %s", ini_path_.c_str());
  if (opt_.bench_frames > 0) demo_->set_open(true);  // the benchmark is the demo plot
  if (opt_.demo) {
    demo_->set_open(true);
    demo_->set_demo_cursor(1200.0);
    log_info("demo: %d layers x %d positions of synthetic c/(t+t0)", DilutionDemoView::kLayers, DilutionDemoView::kPoints);
    log_warn("demo data only: no model is loaded");
  }

  const int warmup = 5;
  const int total_frames = opt_.bench_frames > 0 ? warmup + opt_.bench_frames : opt_.frames;
  FrameStats bench;
  int rc = 0, frame = 0, idle_frames = 0;
  std::signal(SIGINT, on_quit_signal);
  std::signal(SIGTERM, on_quit_signal);
  while (!quit_ && !g_quit_signal && !glfwWindowShouldClose(win_)) {
    // Interactive and idle: sleep until input (or 0.5 s, so log lines from workers still show).
    if (!headless() && idle_frames > 30)
      glfwWaitEventsTimeout(0.5);
    else
      glfwPollEvents();
    const auto t0 = Clock::now();
    const double cpu0 = process_cpu_ms();
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
      demo_->plot().view(&x0, &x1, &y0, &y1);
      double f = std::pow(1.0015, (frame / 100) % 2 ? -1.0 : 1.0);
      demo_->plot().set_view(x0 * f, x1 * f, y0, y1);
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
    if (!opt_.export_plot.empty() && frame == std::max(1, total_frames - 2)) {
      // Queued now, drawn and read back during the next frame.
      demo_->plot().request_png(opt_.export_plot + ".png");
      std::string err;
      if (!demo_->plot().save_csv(opt_.export_plot + ".csv", &err)) {
        std::fprintf(stderr, "pvm-studio: error: %s\n", err.c_str());
        rc = 1;
      }
    }

    if (!opt_.screenshot.empty() && frame == total_frames) {
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
    if (opt_.bench_frames > 0 && frame > warmup) {
      bench.total.push_back(total_ms);
      bench.ui.push_back(ui_ms);
      bench.cpu.push_back(process_cpu_ms() - cpu0);
      const PlotStats& ps = demo_->plot().stats();
      if (ps.recomputed) bench.decimate.push_back(ps.decimate_ms), bench.raster.push_back(ps.raster_ms);
    }
    const bool input = io.MouseDelta.x != 0 || io.MouseDelta.y != 0 || io.MouseWheel != 0 || ImGui::IsAnyMouseDown() ||
                       io.InputQueueCharacters.Size > 0 || io.KeyCtrl || io.KeyShift || io.KeyAlt;
    idle_frames = input ? 0 : idle_frames + 1;
    if (headless() && frame >= total_frames) break;
  }

  if (opt_.bench_frames > 0) {
    const PlotStats& ps = demo_->plot().stats();
    int fb_w, fb_h;
    glfwGetFramebufferSize(win_, &fb_w, &fb_h);
    std::printf(
        "bench: %zu frames at %dx%d on %s%s%s: frame mean %.2f ms, p95 %.2f ms, max %.2f ms | ui build mean %.2f ms, "
        "p95 %.2f ms | process cpu mean %.2f ms, p95 %.2f ms | %zu series points -> %zu drawn (%s)\n"
        "bench: plot re-drawn in %zu of those frames: decimation mean %.2f ms, rasterization+upload mean %.2f ms\n",
        bench.total.size(), fb_w, fb_h, about_->gl_renderer.c_str(), opt_.bench_pan ? ", panning" : "",
        opt_.hover ? ", hover" : "", FrameStats::mean(bench.total), FrameStats::pct(bench.total, 0.95),
        FrameStats::pct(bench.total, 1.0), FrameStats::mean(bench.ui), FrameStats::pct(bench.ui, 0.95), FrameStats::mean(bench.cpu),
        FrameStats::pct(bench.cpu, 0.95), ps.points_total, ps.points_drawn,
        demo_->plot().raster() ? "raster layer" : "ImDrawList polylines", bench.decimate.size(),
        FrameStats::mean(bench.decimate), FrameStats::mean(bench.raster));
  }
  shutdown();
  return rc;
}

}  // namespace

int run_studio(const StudioOptions& opt) {
  StudioApp app(opt);
  return app.run();
}

}  // namespace pvm::studio
