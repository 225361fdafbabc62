// What verify refuses, a resume refuses, and the other way round: checkpoints with
// index files and state.json rewritten on purpose and then resealed (every
// checksum recomputed, as a careful forger or a buggy tool would), so that only
// the loaders' own checks stand between them and a run. Plus bounded fuzzers with
// fixed seeds: mutated state.json, index files and safetensors files must be
// refused with exit code 5 (an Error), never crash or load.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "checkpoint/safetensors.h"
#include "core/errors.h"
#include "core/sha256.h"
#include "data/temp_dir.h"
#include "train/tiny_config.h"
#include "train/trainer.h"
#include "train/verify.h"

namespace sy {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const std::string& path) { return json::parse(std::ifstream(path)); }
void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Recomputes every file checksum and state.json's own.
void reseal(const std::string& dir) {
  json st = read_json(dir + "/state.json");
  json files = json::object();
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename() != "state.json") files[e.path().filename().string()] = sha256_file(e.path().string());
  st["files"] = files;
  st["state_sha256"] = checkpoint_state_digest(st);
  write_text(dir + "/state.json", st.dump(2));
}

class CheckpointIntegrity : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg = test::tiny_config();
    cfg.moe.num_experts = 4;
    cfg.run.dir = tmp.file("run");
    ops = make_ops(Device::cpu);
    trainer = std::make_unique<Trainer>(cfg, *ops);
    trainer->train_step(0);
    ck = trainer->save_checkpoint_now(1);
  }
  // A copy of the checkpoint with `change` applied to it, resealed.
  std::string tampered(const std::function<void(const std::string&)>& change) {
    const std::string dir = tmp.file("t" + std::to_string(n++));
    fs::copy(ck, dir, fs::copy_options::recursive);
    change(dir);
    reseal(dir);
    return dir;
  }
  void edit_index(const std::string& dir, const std::function<void(json&)>& f) {
    const std::string path = dir + "/model.safetensors.index.json";
    json j = read_json(path);
    f(j);
    write_text(path, j.dump(2));
  }
  // Both verify and a resume refuse `dir` as a bad checkpoint, with `pattern` in the message.
  void both_refuse(const std::string& dir, const std::string& pattern) {
    for (int which = 0; which < 2; ++which) {
      try {
        if (which == 0) verify_checkpoint(dir);
        else trainer->restore_checkpoint(dir);
        ADD_FAILURE() << (which == 0 ? "verify" : "resume") << " accepted " << dir;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ExitCode::checkpoint) << e.what();
        EXPECT_NE(std::string(e.what()).find(pattern), std::string::npos)
            << (which == 0 ? "verify: " : "resume: ") << e.what();
      }
    }
  }
  test::TempDir tmp;
  Config cfg;
  std::unique_ptr<Ops> ops;
  std::unique_ptr<Trainer> trainer;
  std::string ck;
  int n = 0;
};

TEST_F(CheckpointIntegrity, TheSavedCheckpointPassesBoth) {
  EXPECT_NO_THROW(verify_checkpoint(ck));
  EXPECT_EQ(trainer->restore_checkpoint(ck), 1);
}

TEST_F(CheckpointIntegrity, IndexShapesRefusedAlike) {
  const std::string a_tensor = read_json(ck + "/model.safetensors.index.json")["weight_map"].begin().key();
  both_refuse(tampered([&](auto& d) { edit_index(d, [](json& j) { j["weight_map"] = json::array(); }); }),
              "no \"weight_map\" object");
  both_refuse(tampered([&](auto& d) { edit_index(d, [&](json& j) { j["weight_map"][a_tensor] = 7; }); }),
              "not a file name");
  both_refuse(tampered([&](auto& d) {
                edit_index(d, [&](json& j) { j["weight_map"][a_tensor] = "../model-rank-0.safetensors"; });
              }),
              "not a file of the checkpoint's folder");
  both_refuse(tampered([&](auto& d) { edit_index(d, [&](json& j) { j["weight_map"].erase(a_tensor); }); }),
              "has no tensor '" + a_tensor + "'");
  both_refuse(tampered([&](auto& d) {
                edit_index(d, [](json& j) { j["weight_map"]["blocks.9.not_a_weight"] = "model-rank-0.safetensors"; });
              }),
              "which this model does not have");
  both_refuse(tampered([&](auto& d) {
                edit_index(d, [&](json& j) { j["weight_map"][a_tensor] = "optimizer-rank-0.safetensors"; });
              }),
              "has no tensor '" + a_tensor + "'");
  both_refuse(tampered([&](auto& d) { write_text(d + "/model.safetensors.index.json", "{\"weight_map\": "); }),
              "not valid JSON");
  both_refuse(tampered([&](auto& d) { fs::remove(d + "/optimizer.safetensors.index.json"); }),
              "does not list 'optimizer.safetensors.index.json'");
}

TEST_F(CheckpointIntegrity, StateShapesRefusedAlike) {
  auto edit_state = [&](const std::function<void(json&)>& f) {
    return [f](const std::string& d) {
      json st = read_json(d + "/state.json");
      f(st);
      write_text(d + "/state.json", st.dump(2));
    };
  };
  both_refuse(tampered(edit_state([](json& st) { st["step"] = -3; })), "impossible values");
  both_refuse(tampered(edit_state([](json& st) { st["loader"] = "x"; })), "is malformed");
  both_refuse(tampered(edit_state([](json& st) { st["layout"]["world"] = 0; })), "impossible values");
  both_refuse(tampered(edit_state([](json& st) { st["version"] = "2"; })), "checkpoint format version \"2\"");
  both_refuse(tampered(edit_state([](json& st) { st["router_state"] = 1; })), "is malformed");
}

// Fuzz: random byte flips, truncations and insertions; every outcome is a clean
// Error(checkpoint) or, rarely, a file that still verifies (a flip in whitespace).
template <class F>
void fuzz_file(const std::string& path, uint64_t seed, int rounds, const F& check) {
  std::string original;
  {
    std::ifstream in(path, std::ios::binary);
    original.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::mt19937_64 rng(seed);
  for (int r = 0; r < rounds; ++r) {
    std::string s = original;
    const int kind = static_cast<int>(rng() % 4);
    const size_t at = s.empty() ? 0 : rng() % s.size();
    if (kind == 0 && !s.empty()) s[at] = static_cast<char>(rng());
    else if (kind == 1) s.resize(at);
    else if (kind == 2) s.insert(at, 1 + rng() % 8, static_cast<char>(rng()));
    else if (!s.empty()) s[at] = "{}[]\":,0-e9\\ "[rng() % 14];
    write_text(path, s);
    try {
      check();
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), ExitCode::checkpoint) << "round " << r << ": " << e.what();
    }
  }
  write_text(path, original);
}

TEST_F(CheckpointIntegrity, FuzzedStateJsonIsRefusedCleanly) {
  const std::string dir = tampered([](const std::string&) {});
  fuzz_file(dir + "/state.json", 1, 300, [&] { verify_checkpoint(dir); });
}

TEST_F(CheckpointIntegrity, FuzzedIndexFilesAreRefusedCleanly) {
  // Resealed after each mutation: only the index parser and the loader stand guard.
  const std::string dir = tampered([](const std::string&) {});
  const std::string index = dir + "/model.safetensors.index.json";
  fuzz_file(index, 2, 200, [&] {
    reseal(dir);
    verify_checkpoint(dir);
  });
}

TEST_F(CheckpointIntegrity, FuzzedSafetensorsAreRefusedCleanly) {
  const std::string dir = tampered([](const std::string&) {});
  const std::string file = dir + "/model-rank-0.safetensors";
  fuzz_file(file, 3, 300, [&] { SafeTensorsFile parsed(file); });
  fuzz_file(file, 4, 100, [&] {
    reseal(dir);
    verify_checkpoint(dir);
  });
}

}  // namespace
}  // namespace sy
