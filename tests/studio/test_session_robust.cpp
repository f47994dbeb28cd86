// Issue 21 on the studio's session reader: a session of a future format is refused, null or
// wrong-typed fields are named, a FIFO trace does not hang, and a deterministic fuzz of
// session.json and the traces: whatever the bytes, load_session succeeds or throws pvm::Error with
// one line naming a file of the session.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "views/session_io.h"

using namespace pvm::studio;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  std::string path;
  explicit TempDir(const char* tag) {
    // Many small rewrites: tmpfs when there is one.
    fs::path base = ::access("/dev/shm", W_OK) == 0 ? fs::path("/dev/shm") : fs::temp_directory_path();
    path = (base / (std::string("pvm_sess_") + tag + "_" + std::to_string(::getpid()))).string();
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

UiState small_state() {
  UiState ui;
  ui.model.dir = "random:qwen3-vl-tiny";
  ui.model.layers = 2;
  ui.model.pvm_layers = {1};
  ui.grid = GridInfo{1, 2, 64, 32};
  ui.settings.prompt = "Describe.";
  ui.settings.image.width = 2, ui.settings.image.height = 1;
  ui.settings.image.rgb = {255, 0, 0, 0, 255, 0};
  ui.settings.image.source = "scene:1";
  for (int k = 0; k < 2; ++k) {
    for (int i = 0; i < 2; ++i) {
      TokenRec t;
      t.id = 10 + i;
      t.piece = i ? "b" : "a";
      t.mass = {0.5f, 0.25f};
      t.mass_nosink = {0.4f, 0.2f};
      t.heat = {{0.1f, 0.9f}};
      if (k) t.pvm_gate = {0.5f}, t.pvm_ratio = {0.1f}, t.pvm_entropy = {1.5f};
      t.lens_first = i;
      ui.side[k].tokens.push_back(t);
    }
    ui.side[k].finish = "stop";
  }
  return ui;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const pvm::Error& e) {
    return e.what();
  }
  return "";
}

void spit(const std::string& p, const std::string& bytes) {
  ::unlink(p.c_str());
  std::ofstream(p, std::ios::binary) << bytes;
}

// splitmix64, as in tests/base/test_fuzz_readers.cpp.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  bool coin(int percent = 50) { return below(100) < uint64_t(percent); }
};

json random_value(Rng& r) {
  switch (r.below(11)) {
    case 0: return nullptr;
    case 1: return r.coin();
    case 2: return -int64_t(r.below(1000)) - 1;
    case 3: return int64_t(r.below(8));
    case 4: return uint64_t(18446744073709551615ull);
    case 5: return 1e300;
    case 6: return int64_t(1) << 40;
    case 7: return "x";
    case 8: return "";
    case 9: return json::array({1, "a", nullptr});
    default: return json::object({{"k", 1}});
  }
}

// Replace, delete or add one value somewhere inside `j`.
void mutate_json(Rng& r, json& j) {
  json* cur = &j;
  for (int depth = 0; depth < 5; ++depth) {
    bool container = (cur->is_object() || cur->is_array()) && !cur->empty();
    if (!container || r.coin(25)) break;
    auto it = cur->begin();
    std::advance(it, long(r.below(cur->size())));
    cur = &*it;
  }
  switch (r.below(3)) {
    case 0: *cur = random_value(r); break;
    case 1:
      if (cur->is_object() && !cur->empty()) {
        auto it = cur->begin();
        std::advance(it, long(r.below(cur->size())));
        cur->erase(it);
      } else if (cur->is_array() && !cur->empty()) {
        cur->erase(cur->begin() + long(r.below(cur->size())));
      } else {
        *cur = random_value(r);
      }
      break;
    default:
      if (cur->is_object()) (*cur)["extra"] = random_value(r);
      else if (cur->is_array()) cur->push_back(random_value(r));
      else *cur = random_value(r);
  }
}

std::string mutate_bytes(Rng& r, std::string s) {
  static const std::string alphabet = "{}[]\",:0123456789-.e \\ntfalsu";
  for (int k = 0, ops = 1 + int(r.below(3)); k < ops; ++k) {
    const size_t n = s.size();
    switch (r.below(4)) {
      case 0:
        if (n) s[r.below(n)] = char(r.below(256));
        break;
      case 1:
        if (n) s[r.below(n)] = alphabet[r.below(alphabet.size())];
        break;
      case 2:
        s.resize(r.below(n + 1));
        break;
      default:
        if (n) s.erase(r.below(n), 1 + r.below(8));
    }
  }
  return s;
}

}  // namespace

TEST(SessionRobust, FutureFormatNullsAndFifosAreNamed) {
  TempDir d("fields");
  const std::string dir = d.path + "/s", sp = dir + "/session.json";
  UiState st = small_state();
  st.settings.visual_scale = 2.5f, st.settings.visual_restore = 0.5f, st.settings.history_window = 32;
  st.settings.stop_at_eos = false;
  save_session(dir, st, "", json::object());
  const json good = json::parse(pvm::read_file_to_string(sp));
  {
    const LoadedSession ls = load_session(dir);  // the dilution interventions come back as saved
    EXPECT_EQ(ls.ui.settings.visual_scale, 2.5f);
    EXPECT_EQ(ls.ui.settings.visual_restore, 0.5f);
    EXPECT_EQ(ls.ui.settings.history_window, 32);
    EXPECT_FALSE(ls.ui.settings.stop_at_eos);
    json old = good;  // a session saved before they existed: off (and stopping at the answer's end)
    old["settings"].erase("intervention");
    old["settings"].erase("stop_at_eos");
    spit(sp, old.dump());
    const LoadedSession lo = load_session(dir);
    EXPECT_EQ(lo.ui.settings.visual_scale, 1.0f);
    EXPECT_EQ(lo.ui.settings.history_window, 0);
    EXPECT_TRUE(lo.ui.settings.stop_at_eos);
  }
  struct Case {
    std::function<void(json&)> edit;
    std::string message;  // the whole error after "<session.json>: "
  };
  const std::vector<Case> cases{
      {[](json& j) { j["pvm_studio_session"] = 2; }, "session format 2 is newer than this build reads (up to 1): it needs a newer build"},
      {[](json& j) { j["pvm_studio_session"] = "1"; }, "pvm_studio_session must be a positive integer, got \"1\""},
      {[](json& j) { j["settings"]["sampling"]["top_k"] = nullptr; },
       "settings.sampling.top_k must be an integer in [0, 1073741824], got null"},
      {[](json& j) { j["settings"]["max_new_tokens"] = "256"; }, "settings.max_new_tokens must be an integer in [1, 1048576], got \"256\""},
      {[](json& j) { j["settings"]["sampling"]["temperature"] = nullptr; }, "settings.sampling.temperature must be a number in [0, 1e+06], got null"},
      {[](json& j) { j["grid"]["rows"] = int64_t(1) << 31; }, "grid.rows must be an integer in [0, 4096], got 2147483648"},
      {[](json& j) { j["model"]["layers"] = -1; }, "model.layers must be an integer in [0, 1048576], got -1"},
      {[](json& j) { j["model"]["pvm_layers"] = {1, nullptr}; }, "model.pvm_layers must be a list of layer indices, got [1,null]"},
      {[](json& j) { j["prompt"]["text"] = nullptr; }, "prompt.text must be a string, got null"},
      {[](json& j) { j["settings"]["pvm"] = nullptr; }, "settings.pvm must be true or false, got null"},
      {[](json& j) { j["settings"]["intervention"]["history_window"] = -1; },
       "settings.intervention.history_window must be an integer in [0, 1048576], got -1"},
      {[](json& j) { j["settings"]["intervention"]["visual_restore"] = 5; },
       "settings.intervention.visual_restore must be a number in [-4, 4], got 5"},
      {[](json& j) { j.erase("answers"); }, "missing answers"},
      {[](json& j) { j["answers"]["pvm"] = nullptr; }, "answers.pvm must be an object, got null"},
      {[](json& j) { j["answers"]["pvm"]["tokens"] = 1e20; }, "answers.pvm.tokens must be an integer in [0, 9223372036854775807], got 1e+20"},
      {[](json& j) { j["image"]["file"] = ""; }, "image.file must name the image file"},
      {[](json& j) { j["views"] = 3; }, "views must be an object, got 3"},
  };
  for (const auto& c : cases) {
    json j = good;
    c.edit(j);
    spit(sp, j.dump());
    EXPECT_EQ(error_of([&] { load_session(dir); }), sp + ": " + c.message);
  }
  // A FIFO as a trace or as session.json: an error at once, not a frozen UI thread.
  spit(sp, good.dump());
  const std::string trace = dir + "/trace_pvm.jsonl";
  ASSERT_TRUE(fs::remove(trace));
  ASSERT_EQ(::mkfifo(trace.c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(error_of([&] { load_session(dir); }), trace + ": is not a regular file (trace file expected)");
  ASSERT_TRUE(fs::remove(sp));
  ASSERT_EQ(::mkfifo(sp.c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { load_session(dir); }), sp + ": is not a regular file (session file expected)");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

// Fuzz: session.json (bytes and structure) and the trace lines.
TEST(SessionRobust, FuzzSessionReaderOnlyThrowsOneLinePvmErrors) {
  TempDir d("fuzz");
  const std::string dir = d.path + "/s", sp = dir + "/session.json", tp = dir + "/trace_baseline.jsonl";
  save_session(dir, small_state(), "", json::object());
  const std::string good = pvm::read_file_to_string(sp), good_trace = pvm::read_file_to_string(tp);
  const json gj = json::parse(good);
  Rng r{2026};
  int ok = 0, errors = 0, bad = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int it = 0; it < 1500; ++it) {
    std::string s = good, t = good_trace;
    switch (r.below(4)) {
      case 0: s = mutate_bytes(r, good); break;
      case 1: t = mutate_bytes(r, good_trace); break;
      case 2: {  // a trace line with a mutated token record
        json line = json::parse(good_trace.substr(0, good_trace.find('\n')));
        mutate_json(r, line);
        t = line.dump() + good_trace.substr(good_trace.find('\n'));
        break;
      }
      default: {
        json j = gj;
        for (int k = 0, n = 1 + int(r.below(3)); k < n; ++k) mutate_json(r, j);
        s = j.dump();
      }
    }
    spit(sp, s);
    spit(tp, t);
    try {
      LoadedSession ls = load_session(dir);
      ++ok;
    } catch (const pvm::Error& e) {
      ++errors;
      const std::string m = e.what();
      if (m.find('\n') != std::string::npos || m.rfind(dir + "/", 0) != 0)
        if (++bad <= 5) ADD_FAILURE() << "bad message: '" << m << "' for session " << s.substr(0, 300);
    } catch (const std::exception& e) {
      if (++bad <= 5) ADD_FAILURE() << "non-pvm exception: " << e.what() << " for session " << s.substr(0, 300);
    }
  }
  std::printf("[fuzz] session reader: ok=%d pvm::Error=%d other=%d in %.1f s\n", ok, errors, bad,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  EXPECT_EQ(bad, 0);
  EXPECT_GT(ok, 50);
  EXPECT_GT(errors, 500);
}
