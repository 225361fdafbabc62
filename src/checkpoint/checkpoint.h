#pragma once
// Checkpoints: <run>/checkpoints/step_NNNNNNN/
//   model-rank-R.safetensors, optimizer-rank-R.safetensors   tensors by logical name
//   model.safetensors.index.json, optimizer.safetensors.index.json
//   state.json   step, counters, loader and router state, resolved config, the
//                fingerprint resume compares, library versions, SHA-256 of every
//                other file of the directory, and `state_sha256`: the SHA-256 of
//                state.json's own content (without that field), so that an edited
//                step, loader position or file list is refused like a flipped byte
// Written into a temporary directory, fsynced, renamed; `checkpoints/latest` names
// the newest committed one and is replaced atomically. A crash at any point of a
// save leaves the previous checkpoint intact and `latest` pointing at it.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/params.h"
#include "parallel/communicator.h"

namespace sy {

// Version 2 added state_sha256; version 1 checkpoints still load (with a warning:
// their state.json is not covered by a checksum).
constexpr int kCheckpointVersion = 2;

struct CheckpointState {
  int64_t step = 0;           // optimizer steps completed
  int64_t tokens_seen = 0;
  int64_t adam_steps = 0;
  int64_t skipped_steps = 0;  // steps skipped on non-finite values
  int64_t loader_consumed = 0;
  std::map<std::string, std::vector<double>> router_state;  // e.g. expert-choice thresholds
  std::string config_yaml;    // the resolved config of the run that saved it
  nlohmann::json fingerprint;  // what must not change across a resume
  int world = 1, ep = 1;
};

// Who writes which tensors: `shard` ≥ 0 writes model-rank-<shard> and
// optimizer-rank-<shard> with the experts this rank holds, and the dense weights
// too when `dense`; -1 writes nothing (a replica whose tensors another rank saves).
struct ShardPlan {
  int shard = -1;
  bool dense = false;
};

// Collective over `world`. m and v: Adam's moments, flat, in parameter order.
// Returns the checkpoint's directory.
std::string save_checkpoint(const std::string& run_dir, const CheckpointState& state,
                            const ParamStore& params, const Tensor& m, const Tensor& v,
                            const ShardPlan& plan, Communicator& world, int keep_last,
                            const std::string& protect = "");

// Where a resume starts. "auto": the checkpoint `latest` names; when `latest` is
// missing, empty or names a directory that is gone while step_* checkpoints exist,
// the newest one that verifies (and `note` says so). `dir` is "" when the run
// directory holds no checkpoint at all: a fresh start. Anything else: that
// directory, which must hold a checkpoint. Throws Error(checkpoint) when
// checkpoints exist but none verifies.
struct ResumePoint {
  std::string dir;
  std::string note;  // what was chosen instead of `latest`, and why ("" if nothing)
};
ResumePoint resolve_resume(const std::string& run_dir, const std::string& spec);
// The step of the checkpoint `latest` names, from its state.json alone (no
// checksums read); -1 when there is none or it cannot be parsed.
int64_t committed_step(const std::string& run_dir);
// Parses state.json and checks the format version, state.json's own checksum, that
// its file list covers every file of the directory, and every file's checksum.
// Throws Error(checkpoint) naming the file.
CheckpointState read_checkpoint_state(const std::string& dir);
// Fills params (and m, v unless empty) by logical name, from any layout.
// experts_sharded: params hold this rank's share of the experts (expert parallelism).
void load_checkpoint_tensors(const std::string& dir, ParamStore& params, Tensor m, Tensor v,
                             bool experts_sharded = false);
// `switchyard inspect`. (`verify` builds the saved model and loads the checkpoint
// into it exactly as a resume does: src/train/verify.h.)
std::string describe_checkpoint(const std::string& dir);
// The SHA-256 state.json records of its own content (`state` without its
// state_sha256 field). For tools that rewrite a checkpoint on purpose, and tests.
std::string checkpoint_state_digest(const nlohmann::json& state);
// Names of the fields whose values differ (fingerprints of two configs).
std::vector<std::string> fingerprint_changes(const nlohmann::json& saved, const nlohmann::json& now);

}  // namespace sy
