#include "train/grad_sync.h"

#include <algorithm>

#include "core/errors.h"
#include "core/phases.h"
#include "core/timer.h"

namespace sy {

GradSync::GradSync(ParamStore& params, Communicator& dense, Communicator& experts,
                   int64_t bucket_bytes, bool shard_optimizer)
    : params_(params), dense_(dense), experts_(experts), shard_(shard_optimizer) {
  const int64_t width = static_cast<int64_t>(dtype_size(params.dtype()));
  bucket_of_.assign(static_cast<size_t>(params.size()), 0);
  // Reverse registration order: roughly the order the backward pass finishes them.
  for (ParamId i = params.size() - 1; i >= 0; --i) {
    const ParamSpec& s = params.spec(i);
    const bool fits = !buckets_.empty() && buckets_.back().expert == s.expert &&
                      (buckets_.back().numel + s.numel) * width <= bucket_bytes;
    if (!fits) {
      buckets_.emplace_back();
      buckets_.back().end = i + 1;
      buckets_.back().expert = s.expert;
      buckets_.back().comm = s.expert ? &experts : &dense;
    }
    Bucket& b = buckets_.back();
    b.first = i;
    b.offset = s.offset;
    b.numel += s.numel;
    bucket_of_[i] = buckets_.size() - 1;
  }
  for (Bucket& b : buckets_) {
    const int P = b.comm->size();
    const Slice mine = slice_of(b.numel, P, b.comm->rank());
    // Only MPI's reduce-scatter needs scratch (NCCL reduces in place, and a world of
    // one reduces nothing).
    const bool mpi = params.ops().device() == Device::cpu;
    const int64_t scratch = shard_ && mpi && P > 1 ? std::max<int64_t>(mine.size, 1) : 1;
    b.scratch_buf = Buffer(params.ops(), static_cast<size_t>(scratch) * width);
    b.scratch = b.scratch_buf.as(params.dtype(), {scratch});
    // Traffic: a ring all-reduce, or a reduce-scatter of the gradients and an
    // all-gather of the parameters, move 2·(P−1)/P of the bucket per rank.
    bytes_per_step_ += 2.0 * static_cast<double>(b.numel * width) * (P - 1) / P;
    // This rank's slice, cut at parameter boundaries (parameters of one bucket are
    // contiguous, in increasing id order from b.first).
    int64_t at = b.offset + mine.begin;
    const int64_t stop = at + mine.size;
    for (ParamId i = b.first; i < b.end && at < stop; ++i) {
      const ParamSpec& s = params.spec(i);
      const int64_t lo = std::max(at, s.offset), hi = std::min(stop, s.offset + s.numel);
      if (hi > lo) {
        owned_.push_back({i, lo, hi - lo});
        at = hi;
      }
    }
  }
  std::sort(owned_.begin(), owned_.end(), [](const Span& a, const Span& b) { return a.offset < b.offset; });
  norm_.assign(1, 0.0);
}

void GradSync::begin() {
  comm_seconds_ = 0;
  for (Bucket& b : buckets_) {
    b.missing = static_cast<int>(b.end - b.first);
    b.started = false;
    b.pending.reset();
  }
}

void GradSync::start(size_t bi) {
  Bucket& b = buckets_[bi];
  if (events_) events_->push_back("start " + std::to_string(bi));
  b.started = true;
  if (b.comm->size() == 1) return;  // nothing to reduce (and nothing allocated per step)
  const Tensor grads = params_.grads().view({b.numel}, b.offset);
  b.pending = shard_ ? b.comm->start_reduce_scatter_sum(grads, b.scratch)
                     : b.comm->start_all_reduce_sum(grads);
}

void GradSync::ready(ParamId first, ParamId end) {
  if (events_) events_->push_back("ready " + std::to_string(first) + " " + std::to_string(end));
  Timer t;
  for (ParamId i = first; i < end; ++i) {
    Bucket& b = buckets_[bucket_of_[i]];
    if (--b.missing == 0) start(bucket_of_[i]);
  }
  // Drive the started reductions on (MPI progresses non-blocking collectives only
  // inside MPI calls).
  for (Bucket& b : buckets_)
    if (b.pending) b.pending->test();
  comm_seconds_ += t.seconds();
}

void GradSync::finish() {
  PhaseScope phase(Phase::communication);
  if (events_) events_->push_back("finish");
  Timer t;
  for (size_t bi = 0; bi < buckets_.size(); ++bi)
    if (!buckets_[bi].started) start(bi);  // a parameter the backward did not report
  for (Bucket& b : buckets_)
    if (b.pending) b.pending->wait();
  comm_seconds_ += t.seconds();
}

void GradSync::gather_like_params(Tensor flat) {
  SY_CHECK(flat.numel() == params_.numel(), "gather_like_params: {} elements, the parameters have {}",
           flat.numel(), params_.numel());
  std::vector<std::unique_ptr<PendingCollective>> pending;
  for (Bucket& b : buckets_)
    if (b.comm->size() > 1) pending.push_back(b.comm->start_all_gather(flat.view({b.numel}, b.offset)));
  for (auto& p : pending) p->wait();
}

void GradSync::gather_params() {
  PhaseScope phase(Phase::communication);
  gather_like_params(params_.values());
}

double GradSync::global_norm_squared(Ops& ops) {
  // Each rank sums the squares of its slices; over the world every element of every
  // bucket is in exactly one rank's slices (dense buckets are sliced over the world;
  // expert buckets over a data-parallel group, whose ranks hold the same experts
  // while the expert-parallel groups hold different ones).
  norm_[0] = 0;
  const Tensor grads = params_.grads();
  for (const Span& s : owned_) norm_[0] += ops.sum_squares(grads.view({s.size}, s.offset));
  dense_.all_reduce_sum(norm_);
  return norm_[0];
}

}  // namespace sy
