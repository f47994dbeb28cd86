// The studio's third arm (issue 29 item 3): with a VisMem adapter attached, a generation adds the
// VisMem answer (PVM off + latent memories) beside baseline and PVM, with the same prompt and seed.
// Its tokens equal the engine's generation with memories, its invocation markers are the probes',
// a session keeps the adapter and the answer, and a bad adapter is an error that leaves two arms.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "app/studio/options.h"
#include "app/studio/session.h"
#include "engine/pipeline.h"
#include "engine/probes.h"
#include "engine/vismem.h"
#include "tests/studio/studio_fixtures.h"
#include "views/session_io.h"
#include "views/vismem_marks.h"

using namespace pvm::studio;
using namespace pvm::studio::testing;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("pvm_vismem_arm_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A small VisMem adapter for the studio's random model, written once per process (removed at exit).
// The lower half of the vocabulary are separators (what fits the 1 MB config limit): the random
// model's words are noise, and a real separator list would rarely be hit.
struct TempAdapter {
  std::string dir;
  ~TempAdapter() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};
const std::string& adapter_dir() {
  static const TempAdapter adapter{[] {
    const fs::path d = temp_dir("adapter");
    auto pipe = random_demo_pipeline();
    auto& m = *pipe->model.model;
    pvm::VismemConfig c;
    c.query_len = 3, c.short_len = 2, c.long_len = 3;
    c.qc_layers = 1, c.qc_heads = 4, c.qc_ff_mult = 2;
    c.lora_rank = 4, c.lora_alpha = 8;
    c.long_layers = 2;
    for (int64_t i = 0; i < m.cfg.text.vocab_size / 2; ++i) c.separator_ids.push_back(i);
    pvm::attach_vismem(m, c, 5);
    pvm::save_vismem_adapter(m, d.string());
    return d.string();
  }()};
  return adapter.dir;
}

GenerateSettings vismem_settings(int n) {
  GenerateSettings s = settings(n);
  s.vismem_invoke = "separators";
  s.vismem_p = 0.5f;
  s.vismem_max = 3;
  s.heatmap = false;  // not needed here; keeps the test quick
  return s;
}

// The engine's own generation on the model the session runs (random_demo_pipeline + the adapter),
// built the way `pvm generate --vismem --no-pvm --probe` builds it.
struct Reference {
  std::unique_ptr<pvm::Pipeline> pipe = random_demo_pipeline();
  pvm::GenerationResult res, base;
  std::vector<pvm::TokenProbe> probes;
  explicit Reference(const GenerateSettings& s) {
    at::set_num_threads(1);  // as the session's worker (Session(1)): the same reductions, the same draws
    pvm::load_vismem_adapter(*pipe->model.model, adapter_dir());
    pvm::PromptSpec spec;
    spec.text = s.prompt;
    pvm::ImageRGB im;
    im.width = s.image.width, im.height = s.image.height, im.rgb = s.image.rgb;
    spec.images.push_back(im);
    auto prep = pipe->prepare(spec);
    auto& req = prep.request;
    req.max_new_tokens = s.max_new_tokens;
    req.sampling.do_sample = true;
    req.sampling.temperature = s.sampling.temperature;
    req.sampling.seed = uint64_t(s.sampling.seed);
    req.pvm = false;
    base = pvm::generate(pipe->model.model, req);  // the baseline arm on the same loaded model
    req.vismem.enabled = true;
    req.vismem.invoke = s.vismem_invoke;
    req.vismem.p = s.vismem_p;
    req.vismem.max_invocations = s.vismem_max;
    req.vismem.seed = uint64_t(s.sampling.seed);
    const auto& mc = pipe->model.model->config();
    pvm::ProbeOptions po;
    po.pvm = false;
    pvm::ProbeRecorder rec(pipe->model.model, pvm::visual_positions(req.prompt_ids, mc.image_token_id), po, req.grids,
                           mc.vision.spatial_merge_size);
    rec.attach(req);
    res = pvm::generate(pipe->model.model, req);
    probes = rec.tokens();
  }
};

std::unique_ptr<Session> session_with(const std::string& vismem) {
  auto s = std::make_unique<Session>(1);
  LoadRequest r = random_request();
  r.vismem = vismem;
  std::string why;
  EXPECT_TRUE(s->load_model(r, &why)) << why;
  s->wait_idle();
  return s;
}

float mean(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return v.empty() ? NAN : float(s / double(v.size()));
}

}  // namespace

TEST(StudioVismem, ThirdArmEqualsEngineGenerationWithMemoriesAndMarkersComeFromTheProbes) {
  auto s = session_with(adapter_dir());
  UiState ui = synced(*s);
  ASSERT_TRUE(ui.model.loaded) << ui.status.error;
  EXPECT_EQ(ui.model.vismem, adapter_dir());
  EXPECT_NE(ui.model.vismem_summary.find("N_s=2"), std::string::npos) << ui.model.vismem_summary;
  EXPECT_GT(ui.model.params["vismem"], 0);

  const GenerateSettings g = vismem_settings(16);
  std::string why;
  ASSERT_TRUE(s->generate(g, &why)) << why;  // interleaved: the three arms take turns
  s->wait_idle();
  s->sync(ui);
  ASSERT_TRUE(ui.status.error.empty()) << ui.status.error;
  const SideData& vm = ui.of(Side::Vismem);
  ASSERT_FALSE(vm.tokens.empty());
  EXPECT_FALSE(ui.of(Side::Baseline).tokens.empty());
  EXPECT_FALSE(ui.of(Side::Pvm).tokens.empty());

  const Reference ref(g);
  const auto& ins = ref.res.insertions[0];
  ASSERT_FALSE(ins.empty()) << "the reference inserted no memory: the test would check nothing";
  EXPECT_EQ(ids(vm), ref.res.tokens[0]);
  EXPECT_EQ(ids(ui.of(Side::Baseline)), ref.base.tokens[0]);  // attaching VisMem leaves the baseline as it was
  EXPECT_NE(ids(vm), ids(ui.of(Side::Baseline)));             // the memories changed the answer

  // Invocation markers: one per insertion, at its start token, with the probes' attention split.
  const auto marks = invocation_marks(vm.tokens);
  ASSERT_EQ(marks.size(), ins.size());
  std::vector<const pvm::InsertedMemoryProbe*> probed;
  for (const auto& p : ref.probes)
    for (const auto& ip : p.inserted) probed.push_back(&ip);
  ASSERT_EQ(probed.size(), ins.size());
  for (size_t i = 0; i < marks.size(); ++i) {
    EXPECT_EQ(marks[i].token, ins[i].token_index);
    EXPECT_EQ(marks[i].type, ins[i].type);
    EXPECT_EQ(marks[i].rows, ins[i].rows);
    const TokenRec& start = vm.tokens[size_t(marks[i].token)];
    EXPECT_EQ(start.vismem_token, ins[i].type == "long" ? 2 : 0);
    EXPECT_EQ(vm.tokens[size_t(marks[i].token) + 1].vismem_token, ins[i].type == "long" ? 3 : 1);  // the end token
    EXPECT_FLOAT_EQ(marks[i].visual, mean(probed[i]->visual));
    EXPECT_FLOAT_EQ(marks[i].self, mean(probed[i]->self));
    EXPECT_FLOAT_EQ(marks[i].other, mean(probed[i]->other));
    EXPECT_NEAR(marks[i].visual + marks[i].self + marks[i].other, 1.0, 1e-4);
  }
  // Memory mass per token: the probes' (the end tokens, which no forward produced, have none).
  size_t with_memory = 0;
  for (const auto& p : ref.probes) {
    ASSERT_LT(size_t(p.step), vm.tokens.size());
    EXPECT_EQ(vm.tokens[size_t(p.step)].memory_mass, p.memory_mass) << "token " << p.step;
    EXPECT_EQ(vm.tokens[size_t(p.step)].invoked, p.invoked) << "token " << p.step;
    with_memory += !p.memory_mass.empty();
  }
  EXPECT_GT(with_memory, 0u);
  const auto curve = memory_mass_curve(vm.tokens);
  EXPECT_TRUE(std::isnan(curve[0]));  // nothing to attend to before the first memory
  EXPECT_EQ(vm.text.find("<m"), vm.text.find(marks[0].type == "long" ? "<ml_I>" : "<ms_I>"));  // marked in the text

  // One arm after the other gives the same three answers.
  GenerateSettings seq = g;
  seq.interleave = false;
  UiState ui2 = ui;
  ASSERT_TRUE(s->generate(seq, &why)) << why;
  s->wait_idle();
  s->sync(ui2);
  for (int k = 0; k < kSides; ++k) EXPECT_EQ(ids(ui2.side[k]), ids(ui.side[k])) << side_name(Side(k));
}

TEST(StudioVismem, SessionRoundTripKeepsTheAdapterAndTheThirdAnswer) {
  auto s = session_with(adapter_dir());
  std::string why;
  ASSERT_TRUE(s->generate(vismem_settings(12), &why)) << why;
  s->wait_idle();
  UiState ui = synced(*s);
  ASSERT_TRUE(ui.status.error.empty()) << ui.status.error;
  ASSERT_FALSE(invocation_marks(ui.of(Side::Vismem).tokens).empty());
  const fs::path dir = temp_dir("session");
  save_session(dir.string(), ui, "", nlohmann::json::object());
  const LoadedSession back = load_session(dir.string());
  EXPECT_EQ(back.ui.model.vismem, adapter_dir());
  EXPECT_EQ(back.ui.settings.vismem_invoke, "separators");
  EXPECT_FLOAT_EQ(back.ui.settings.vismem_p, 0.5f);
  EXPECT_EQ(back.ui.settings.vismem_max, 3);
  for (int k = 0; k < kSides; ++k) {
    EXPECT_EQ(ids(back.ui.side[k]), ids(ui.side[k])) << side_name(Side(k));
    EXPECT_EQ(back.ui.side[k].text, ui.side[k].text);
  }
  const auto a = invocation_marks(ui.of(Side::Vismem).tokens), b = invocation_marks(back.ui.of(Side::Vismem).tokens);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].token, b[i].token);
    EXPECT_EQ(a[i].type, b[i].type);
    EXPECT_EQ(a[i].rows, b[i].rows);
    EXPECT_FLOAT_EQ(a[i].visual, b[i].visual);
    EXPECT_FLOAT_EQ(a[i].other, b[i].other);
  }
  for (size_t i = 0; i < ui.of(Side::Vismem).tokens.size(); ++i)
    EXPECT_EQ(back.ui.of(Side::Vismem).tokens[i].memory_mass, ui.of(Side::Vismem).tokens[i].memory_mass);

  // A two-arm session writes no VisMem answer and reads back with the third arm empty.
  UiState two = ui;
  two.side[int(Side::Vismem)] = SideData{};
  two.model.vismem.clear();
  const fs::path dir2 = temp_dir("session2");
  save_session(dir2.string(), two, "", nlohmann::json::object());
  EXPECT_FALSE(fs::exists(dir2 / "trace_vismem.jsonl"));
  const LoadedSession back2 = load_session(dir2.string());
  EXPECT_TRUE(back2.ui.of(Side::Vismem).tokens.empty());
  EXPECT_EQ(ids(back2.ui.of(Side::Pvm)), ids(ui.of(Side::Pvm)));
  // A trace whose invocation is neither short nor long is refused naming the file and line.
  {
    std::ifstream in(dir / "trace_vismem.jsonl");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t at = all.find("\"invoked\":\"");
    ASSERT_NE(at, std::string::npos);
    all.replace(at, all.find('"', at + 11) - at + 1, "\"invoked\":\"often\"");
    std::ofstream(dir / "trace_vismem.jsonl") << all;
  }
  try {
    load_session(dir.string());
    FAIL() << "a bad invocation was accepted";
  } catch (const pvm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("trace_vismem.jsonl:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("invoked"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
  fs::remove_all(dir2);
}

TEST(StudioVismem, BadAdapterIsAnErrorAndLeavesTwoArms) {
  // Refused up front: no folder, no adapter_config.json.
  auto s = session_with("");
  std::string why;
  EXPECT_FALSE(s->load_vismem("/nonexistent/vismem", &why));
  EXPECT_NE(why.find("/nonexistent/vismem"), std::string::npos) << why;
  // A folder that looks like an adapter but holds no weights: the worker's error names it, and
  // nothing stays attached, also when a good adapter was attached before.
  const fs::path bad = temp_dir("bad");
  std::ofstream(bad / "adapter_config.json") << R"({"adapter_type": "vismem", "vismem_adapter_format": 1})";
  ASSERT_TRUE(s->load_vismem(adapter_dir(), &why)) << why;
  s->wait_idle();
  EXPECT_EQ(synced(*s).model.vismem, adapter_dir()) << synced(*s).status.error << " / " << synced(*s).status.message;
  ASSERT_TRUE(s->load_vismem(bad.string(), &why)) << why;
  s->wait_idle();
  UiState ui = synced(*s);
  EXPECT_NE(ui.status.error.find(bad.string()), std::string::npos) << ui.status.error;
  EXPECT_EQ(ui.status.error.find('\n'), std::string::npos);  // one line
  EXPECT_TRUE(ui.model.vismem.empty());
  EXPECT_EQ(ui.model.params.count("vismem"), 0u);
  EXPECT_TRUE(ui.model.loaded);
  ASSERT_TRUE(s->generate(vismem_settings(6), &why)) << why;
  s->wait_idle();
  s->sync(ui);
  EXPECT_TRUE(ui.status.error.empty()) << ui.status.error;
  EXPECT_FALSE(ui.of(Side::Baseline).tokens.empty());
  EXPECT_FALSE(ui.of(Side::Pvm).tokens.empty());
  EXPECT_TRUE(ui.of(Side::Vismem).tokens.empty());

  // Given with the model (--vismem): the model loads, the adapter does not, the status says why.
  auto s2 = session_with(bad.string());
  UiState ui2 = synced(*s2);
  EXPECT_TRUE(ui2.model.loaded);
  EXPECT_TRUE(ui2.model.vismem.empty());
  EXPECT_NE(ui2.status.error.find(bad.string()), std::string::npos) << ui2.status.error;
  fs::remove_all(bad);
}

TEST(StudioVismem, OptionsAreCheckedBeforeAnythingLoads) {
  const auto o = parse_options({"--vismem", "a", "--vismem-invoke", "separators", "--vismem-p", "0.25", "--vismem-max", "2"});
  EXPECT_EQ(o.vismem, "a");
  EXPECT_EQ(o.vismem_invoke, "separators");
  EXPECT_DOUBLE_EQ(o.vismem_p, 0.25);
  EXPECT_EQ(o.vismem_max, 2);
  auto error_of = [](std::vector<std::string> args) {
    try {
      parse_options(args);
    } catch (const pvm::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of({"--vismem", "a", "--vismem-invoke", "often"}).find("--vismem-invoke"), std::string::npos);
  EXPECT_NE(error_of({"--vismem", "a", "--vismem-p", "1.5"}).find("--vismem-p"), std::string::npos);
  EXPECT_NE(error_of({"--vismem", "a", "--vismem-max", "-1"}).find("--vismem-max"), std::string::npos);
  EXPECT_NE(error_of({"--vismem-max", "2"}).find("need --vismem"), std::string::npos);
}
