#pragma once
// Gradient reduction across ranks, in buckets that start while the backward pass
// is still running (the data-parallel half of the trainer; the model never sees it).
//
// Parameters are cut into buckets of about `bucket_bytes`, walking them in reverse
// registration order (the order the backward pass finishes them) and never mixing
// dense parameters (replicated on every rank, summed over the world) with expert
// parameters (replicated on the ranks of one data-parallel group, summed there).
// The backward pass reports each range of parameters whose gradient is final
// (ready()); a bucket's reduction starts, non-blocking, as soon as its last
// parameter is. finish() waits for them all.
//
// Two modes (parallel.zero):
//  0  every bucket is all-reduced (the library's all-reduce): every rank holds the
//     whole summed gradient and keeps Adam's moments for every parameter;
//  1  (ZeRO stage 1) every bucket is only reduce-scattered: each rank holds the sum
//     of its slice of every bucket (slice_of over that bucket's communicator), keeps
//     Adam's moments for those slices alone (owned()), updates them, and
//     gather_params() all-gathers the updated parameters.
// Either way each rank sends and receives about 2·n·(P−1)/P elements per step; the
// reduce-scatter's scratch is one slice per bucket, allocated once.
//
// Collectives on one communicator must start in the same order on every rank: the
// backward pass reports parameters in the same order everywhere, each bucket is one
// collective, and the parameters' all-gathers start after the update, in bucket
// order.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/params.h"
#include "parallel/communicator.h"

namespace sy {

class GradSync {
 public:
  // dense: the communicator over which dense gradients are summed (the world);
  // experts: the one for expert gradients (the data-parallel group).
  GradSync(ParamStore& params, Communicator& dense, Communicator& experts, int64_t bucket_bytes,
           bool shard_optimizer);

  // A stretch of contiguous values of one parameter: this rank's slices of every
  // bucket, cut at parameter boundaries. Over the world every element is in exactly
  // one rank's spans (the gradient norm relies on it); with ZeRO 1 they are also
  // what this rank's Adam updates.
  struct Span {
    ParamId param;
    int64_t offset, size;  // elements, into the flat value / gradient buffers
  };
  const std::vector<Span>& owned() const { return owned_; }
  bool sharded() const { return shard_; }

  // The step's gradients: begin() before the last micro-batch's backward; the
  // backward calls ready() for every range [first, end) of parameters whose
  // gradients are final; finish() starts what was not started and waits for all.
  void begin();
  void ready(ParamId first, ParamId end);
  void finish();
  // ZeRO 1, after the update: every rank's slices of the parameter values to every
  // rank (blocking).
  void gather_params();
  // ZeRO 1: the same for any buffer laid out like the parameters (Adam's moments
  // spread out for a checkpoint): each rank's slices to every rank.
  void gather_like_params(Tensor flat);

  // Σ of squared owned gradients over every rank (each element counted once).
  double global_norm_squared(Ops& ops);

  // Per step: bytes this rank sends (and receives) for gradients and parameters,
  // and the seconds this rank's thread spent in the reductions, starting and
  // driving them during the backward pass and waiting in finish(): the reduction
  // time compute did not hide. (MPI moves data only inside its calls, and starting
  // an all-reduce does part of it at once, so on CPU ranks most of the reduction is
  // here; NCCL's run on the GPU while the host goes on, and only the wait counts.)
  double bytes_per_step() const { return bytes_per_step_; }
  double comm_seconds() const { return comm_seconds_; }
  int buckets() const { return static_cast<int>(buckets_.size()); }
  // Bucket b's parameters [first, end), and whether they are experts' (tests, docs).
  struct BucketInfo {
    ParamId first, end;
    int64_t numel;
    bool expert;
  };
  BucketInfo bucket(int b) const {
    const Bucket& k = buckets_[static_cast<size_t>(b)];
    return {k.first, k.end, k.numel, k.expert};
  }

  // Tests: in order, "ready F E" for each range the backward pass reports, "start B"
  // as bucket B's reduction starts, "finish" when the step starts waiting.
  void record_events(std::vector<std::string>* events) { events_ = events; }

 private:
  struct Bucket {
    ParamId first = 0, end = 0;  // parameters [first, end)
    int64_t offset = 0, numel = 0;  // elements, into the flat buffers
    bool expert = false;
    Communicator* comm = nullptr;
    Buffer scratch_buf;
    Tensor scratch;
    int missing = 0;  // parameters not ready yet this step
    bool started = false;
    std::unique_ptr<PendingCollective> pending;
  };
  void start(size_t b);

  ParamStore& params_;
  Communicator& dense_;
  Communicator& experts_;
  bool shard_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // [param] → bucket
  std::vector<Span> owned_;
  double bytes_per_step_ = 0, comm_seconds_ = 0;
  std::vector<std::string>* events_ = nullptr;
  std::vector<double> norm_;
};

}  // namespace sy
