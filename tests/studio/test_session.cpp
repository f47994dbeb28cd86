// The studio session on the in-memory random qwen3-vl-tiny model: loading off the calling thread,
// baseline + PVM generation (interleaved and sequential must agree token for token), probes per
// token, cancellation, and errors that end up in the status instead of crashing.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <unistd.h>

#include "app/studio/options.h"
#include "app/studio/session.h"
#include "tests/studio/studio_fixtures.h"
#include "views/view_image.h"

#include <stb_image_write.h>

#include <cmath>
#include <functional>
#include <limits>

using namespace pvm::studio;
namespace fs = std::filesystem;

using namespace pvm::studio::testing;

namespace {

// One session with the model loaded, shared by the tests (loading costs a couple of seconds).
Session& loaded() {
  static Session* s = [] {
    auto* x = new Session;
    std::string why;
    EXPECT_TRUE(x->load_model(random_request(), &why)) << why;
    x->wait_idle();
    return x;
  }();
  return *s;
}

}  // namespace

TEST(StudioSession, LoadsRandomModelWithInfo) {
  Session& s = loaded();
  UiState ui = synced(s);
  ASSERT_TRUE(ui.model.loaded) << ui.status.message << " / " << ui.status.error;
  EXPECT_EQ(ui.model.dir, kRandomModel);
  EXPECT_EQ(ui.model.layers, 4);
  EXPECT_EQ(ui.model.pvm_layers, (std::vector<int>{1, 3}));
  EXPECT_GT(ui.model.params["pvm"], 0);
  EXPECT_EQ(ui.model.params["total"],
            ui.model.params["vision"] + ui.model.params["text"] + ui.model.params["pvm"] + ui.model.params["lm_head"]);
  EXPECT_EQ(ui.model.weight_bytes, ui.model.params["total"] * 4);  // f32 on the CPU
  EXPECT_FALSE(ui.model.note.empty());
  EXPECT_EQ(ui.status.state, EngineStatus::Idle);
  EXPECT_TRUE(ui.status.error.empty());
  // 64x48 is scaled up to the processor's minimum pixel count: a 256x192 image, 8x6 merged cells.
  GridInfo g = s.grid_for(64, 48);
  EXPECT_EQ(g.cols * 32, g.resized_w);
  EXPECT_EQ(g.rows * 32, g.resized_h);
  EXPECT_GE(g.resized_w * g.resized_h, 65536 - 32 * 32 * 2);
}

TEST(StudioSession, InterleavedEqualsSequentialAndProbesAreFilled) {
  Session& s = loaded();
  const int n = 12;
  GenerateSettings a = settings(n);
  a.interleave = true;
  std::string why;
  ASSERT_TRUE(s.generate(a, &why)) << why;
  EXPECT_TRUE(s.busy());
  EXPECT_FALSE(s.generate(a, &why));  // one job at a time
  EXPECT_NE(why.find("busy"), std::string::npos);
  s.wait_idle();
  UiState ui = synced(s);
  ASSERT_TRUE(ui.status.error.empty()) << ui.status.error;
  const SideData& b = ui.of(Side::Baseline);
  const SideData& p = ui.of(Side::Pvm);
  ASSERT_FALSE(b.tokens.empty());
  ASSERT_FALSE(p.tokens.empty());
  EXPECT_FALSE(b.running);
  EXPECT_TRUE(b.finish == "length" || b.finish == "stop") << b.finish;
  EXPECT_LE(b.tokens.size(), size_t(n));
  ASSERT_TRUE(ui.grid.valid());
  const size_t nv = size_t(ui.grid.rows) * ui.grid.cols;
  for (const TokenRec& t : p.tokens) {
    ASSERT_EQ(t.mass.size(), 4u);
    for (float m : t.mass) EXPECT_TRUE(m >= 0 && m <= 1.0001f) << m;
    for (size_t l = 0; l < 4; ++l) EXPECT_LE(t.mass_nosink[l], t.mass[l] + 1e-6f);
    ASSERT_EQ(t.pvm_gate.size(), 2u);
    EXPECT_FLOAT_EQ(t.pvm_gate[0], 0.5f);
    ASSERT_EQ(t.heat.size(), 4u);
    EXPECT_EQ(t.heat[0].size(), nv);
    ASSERT_EQ(t.pvm_heat.size(), 2u);
  }
  for (const TokenRec& t : b.tokens) EXPECT_TRUE(t.pvm_gate.empty());
  // The text is the concatenation of the non-special pieces.
  std::string text;
  for (const TokenRec& t : p.tokens)
    if (!t.special) text += t.piece;
  EXPECT_EQ(text, p.text);

  // Sequential must produce exactly the same tokens: interleaving shares no state between sides.
  GenerateSettings q = a;
  q.interleave = false;
  ASSERT_TRUE(s.generate(q, &why)) << why;
  s.wait_idle();
  UiState ui2 = ui;  // the UI keeps its mirror; a new run replaces the sides
  s.sync(ui2);
  EXPECT_GT(ui2.run_id, ui.run_id);
  EXPECT_EQ(ids(ui2.of(Side::Baseline)), ids(b));
  EXPECT_EQ(ids(ui2.of(Side::Pvm)), ids(p));
  // PVM with gates 0.5 changes the computation: the visual mass differs from the baseline's.
  EXPECT_NE(b.tokens[0].mass, p.tokens[0].mass);

  // Baseline alone equals the baseline of the pair.
  GenerateSettings only = a;
  only.pvm = false;
  ASSERT_TRUE(s.generate(only, &why)) << why;
  s.wait_idle();
  s.sync(ui2);
  EXPECT_EQ(ids(ui2.of(Side::Baseline)), ids(b));
  EXPECT_TRUE(ui2.of(Side::Pvm).tokens.empty());
}

TEST(StudioSession, SyncAppendsIncrementallyWhileStreaming) {
  Session& s = loaded();
  std::string why;
  ASSERT_TRUE(s.generate(settings(48), &why)) << why;
  UiState ui;
  size_t last = 0, grew = 0;
  for (int i = 0; i < 4000 && s.busy(); ++i) {
    s.sync(ui);
    const size_t n = ui.of(Side::Pvm).tokens.size();
    EXPECT_GE(n, last);  // never shrinks within a run
    grew += n > last;
    last = n;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  s.wait_idle();
  s.sync(ui);
  EXPECT_GT(grew, 1u);  // saw it grow in several steps, not all at once
  EXPECT_EQ(ui.of(Side::Pvm).tokens.size(), ids(ui.of(Side::Pvm)).size());
}

TEST(StudioSession, StopCancelsAGeneration) {
  Session& s = loaded();
  std::string why;
  GenerateSettings g = settings(5000);
  ASSERT_TRUE(s.generate(g, &why)) << why;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  s.stop();
  const auto t0 = std::chrono::steady_clock::now();
  s.wait_idle();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  UiState ui = synced(s);
  const SideData& p = ui.of(Side::Pvm);
  EXPECT_LT(p.tokens.size(), 5000u);
  EXPECT_TRUE(p.finish == "cancelled" || p.finish == "stop") << p.finish;
  EXPECT_TRUE(ui.status.error.empty()) << ui.status.error;
}

TEST(StudioSession, BadRequestsAreMessagesNotCrashes) {
  Session& s = loaded();
  std::string why;
  EXPECT_FALSE(s.load_model(dir_request("/nonexistent/model"), &why));
  EXPECT_NE(why.find("/nonexistent/model"), std::string::npos);
  EXPECT_FALSE(s.load_adapter("/nonexistent/adapter", &why));
  EXPECT_NE(why.find("adapter_config.json"), std::string::npos);
  GenerateSettings g = settings(4);
  g.max_new_tokens = 16385;
  EXPECT_FALSE(s.generate(g, &why));
  g = settings(4);
  g.prompt.clear();
  EXPECT_FALSE(s.generate(g, &why));

  // A folder whose config.json is garbage: the worker fails, the status says why, nothing dies.
  Session fresh;
  const fs::path dir = fs::temp_directory_path() / ("pvm_studio_badmodel_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << "{ not json";
  ASSERT_TRUE(fresh.load_model(dir_request(dir.string()), &why)) << why;
  fresh.wait_idle();
  UiState ui;
  fresh.sync(ui);
  EXPECT_FALSE(ui.model.loaded);
  EXPECT_FALSE(ui.status.error.empty());
  EXPECT_NE(ui.status.message.find("error"), std::string::npos);
  EXPECT_FALSE(fresh.generate(settings(4), &why));  // no model
  fs::remove_all(dir);
}

// The studio takes what the CLI takes and refuses what it refuses (issue 21): the engine's one
// image-size check and the sampling checks, before anything reaches the worker.
// The Prompt view's dilution interventions reach the baseline and PVM arms as `pvm generate`'s reach
// the engine. Greedy, so the arms repeat themselves token for token until an intervention acts:
// - image attention x4: the first token (from the prompt, read as without it) is unchanged, and from
//   the first decode step on, layer 0 gives the image more of its attention;
// - answer-history window N: nothing changes until the answer outgrows the window; at the first step
//   that differs (no earlier than token N + 2) keys have left layer 0's softmax, so the image's
//   share of it grows (the same query: the tokens so far are the same).
TEST(StudioSession, DilutionInterventionsActOnBothArms) {
  Session& s = loaded();
  const int n = 10, window = 2;
  auto run = [&](const GenerateSettings& g) {
    std::string why;
    EXPECT_TRUE(s.generate(g, &why)) << why;
    s.wait_idle();
    UiState ui = synced(s);
    EXPECT_TRUE(ui.status.error.empty()) << ui.status.error;
    return ui;
  };
  GenerateSettings g = settings(n);
  g.sampling.temperature = 0;
  const UiState base = run(g);
  GenerateSettings scaled = g;
  scaled.visual_scale = 4;
  const UiState sc = run(scaled);
  GenerateSettings windowed = g;
  windowed.history_window = window;
  const UiState win = run(windowed);
  for (Side side : {Side::Baseline, Side::Pvm}) {
    const auto &b = base.of(side).tokens, &x = sc.of(side).tokens, &w = win.of(side).tokens;
    ASSERT_GE(b.size(), 6u);
    ASSERT_GE(x.size(), 2u);
    EXPECT_EQ(x[0].id, b[0].id);
    EXPECT_EQ(x[0].mass, b[0].mass);
    EXPECT_GT(x[1].mass[0], b[1].mass[0] + 1e-4f) << side_name(side);
    size_t k = 0;  // the first step the window changes
    while (k < std::min(b.size(), w.size()) && w[k].mass == b[k].mass) {
      EXPECT_EQ(w[k].id, b[k].id);
      ++k;
    }
    ASSERT_LT(k, std::min(b.size(), w.size())) << side_name(side) << ": the window never acted";
    EXPECT_GE(k, size_t(window + 2)) << side_name(side);
    EXPECT_GT(w[k].mass[0], b[k].mass[0]) << side_name(side);
  }
}

// "stop at the answer's end" off: every side runs to max new tokens, as `pvm dilution` measures.
TEST(StudioSession, NoStopRunsEverySideToTheLimit) {
  Session& s = loaded();
  GenerateSettings g = settings(40);
  g.stop_at_eos = false;
  std::string why;
  ASSERT_TRUE(s.generate(g, &why)) << why;
  s.wait_idle();
  UiState ui = synced(s);
  ASSERT_TRUE(ui.status.error.empty()) << ui.status.error;
  for (Side side : {Side::Baseline, Side::Pvm}) {
    EXPECT_EQ(ui.of(side).tokens.size(), 40u) << side_name(side);
    EXPECT_EQ(ui.of(side).finish, "length") << side_name(side);
  }
  EXPECT_TRUE(parse_options({"--demo", "--demo-no-stop"}).demo_no_stop);  // the headless demo's switch
  try {
    parse_options({"--demo-no-stop"});
    ADD_FAILURE() << "--demo-no-stop without --demo was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("--demo-no-stop needs --demo"), std::string::npos) << e.what();
  }
}

TEST(StudioSession, RefusesWhatTheCliRefuses) {
  Session fresh;  // the checks come before "no model loaded"
  std::string why;
  GenerateSettings g = settings(4);
  g.image.width = 1, g.image.height = 20000, g.image.rgb.assign(20000 * 3, 0), g.image.source = "thin.png";
  EXPECT_FALSE(fresh.generate(g, &why));
  EXPECT_EQ(why.rfind("thin.png: absolute aspect ratio must be smaller than 200", 0), 0u) << why;
  for (auto set : std::vector<std::function<void(GenerateSettings&)>>{
           [](auto& s) { s.sampling.temperature = std::nanf(""); },
           [](auto& s) { s.sampling.top_p = std::nanf(""); },
           [](auto& s) { s.sampling.min_p = std::numeric_limits<float>::infinity(); },
           [](auto& s) { s.sampling.repetition_penalty = std::nanf(""); },
           [](auto& s) { s.sampling.top_k = -2; },
           [](auto& s) { s.visual_scale = 0; },
           [](auto& s) { s.visual_scale = std::nanf(""); },
           [](auto& s) { s.visual_restore = 5; },
           [](auto& s) { s.history_window = -1; }}) {
    g = settings(4);
    set(g);
    why.clear();
    EXPECT_FALSE(fresh.generate(g, &why));
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(why.find("no model loaded"), std::string::npos) << why;
  }
  // Files: the same reader and size check as the CLI's image loader.
  const fs::path dir = fs::temp_directory_path() / ("pvm_studio_imgcheck_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ImageData d;
  EXPECT_FALSE(load_image_file(dir.string(), &d, &why));
  EXPECT_EQ(why, dir.string() + ": is a directory, not an image file");
  std::vector<uint8_t> px(300 * 3, 128);
  ASSERT_TRUE(stbi_write_png((dir / "thin.png").c_str(), 1, 300, 3, px.data(), 3));
  EXPECT_FALSE(load_image_file((dir / "thin.png").string(), &d, &why));
  EXPECT_NE(why.find("aspect ratio"), std::string::npos) << why;
  ASSERT_TRUE(stbi_write_png((dir / "ok.png").c_str(), 30, 20, 3, px.data(), 90));
  EXPECT_TRUE(load_image_file((dir / "ok.png").string(), &d, &why)) << why;
  EXPECT_EQ(d.width, 30);
  fs::remove_all(dir);
}
