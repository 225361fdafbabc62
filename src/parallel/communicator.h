#pragma once
// How ranks talk. The trainer and the MoE dispatcher use this interface only;
// model code and routers never see it. Every collective is deterministic: the
// same inputs on the same number of ranks give the same bits, every run, and every
// rank receives the same bits.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace sy {

// The part of an n-element buffer rank r of P owns in reduce-scatter / all-gather:
// n/P elements each, the first n % P ranks one more.
struct Slice {
  int64_t begin = 0, size = 0;
};
Slice slice_of(int64_t n, int P, int r);

// A collective started and not finished yet (non-blocking). test() makes progress
// and says whether it is done; wait() finishes it. Its buffers must stay untouched
// until then. Destroying an unfinished one waits for it.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  virtual bool test() = 0;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;

  // Sums over ranks of a tensor in place, with the library's all-reduce: traffic
  // independent of the number of ranks (a ring moves about 2·n·(P−1)/P elements per
  // rank) and no scratch. Every rank gets the same bits (the libraries reduce each
  // element once and distribute it; tests hold them to it); the same layout gives
  // the same bits every run (another number of ranks sums in another order).
  virtual std::unique_ptr<PendingCollective> start_all_reduce_sum(Tensor x) = 0;
  // Reduce-scatter (ZeRO): afterwards this rank's slice (slice_of(n, P, rank)) of x
  // holds the sum over ranks; the rest of x is undefined. `scratch` holds at least
  // the slice's elements (same dtype and memory as x).
  virtual std::unique_ptr<PendingCollective> start_reduce_scatter_sum(Tensor x, Tensor scratch) = 0;
  // All-gather in place: afterwards every rank's slice of x is everywhere.
  virtual std::unique_ptr<PendingCollective> start_all_gather(Tensor x) = 0;
  // The blocking all-reduce.
  virtual void all_reduce_sum(Tensor x) = 0;
  // Small host vectors (counts, losses): summed in rank order (all-gather then a
  // local sum), the same bits on every rank.
  virtual void all_reduce_sum(std::vector<double>& v) = 0;
  virtual int64_t all_reduce_max(int64_t v) = 0;
  // Variable all-to-all of rows of `row_elems` elements: send holds send_rows[j]
  // rows for rank j, in rank order; recv receives recv_rows[j] rows from rank j,
  // in rank order.
  virtual void all_to_all_v(const Tensor& send, const std::vector<int64_t>& send_rows,
                            Tensor recv, const std::vector<int64_t>& recv_rows,
                            int64_t row_elems) = 0;
  // recv[j·n + i] = what rank j sent as send[rank·n + i] (n = send.size() / size()).
  virtual void all_to_all(const std::vector<int64_t>& send, std::vector<int64_t>& recv) = 0;
  virtual void broadcast(Tensor x, int root) = 0;
  virtual void barrier() = 0;
  // A sub-communicator of the ranks that pass the same `color`, ordered by `key`.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
};

// The world: MPI when the process was launched by mpirun, else a world of one.
std::unique_ptr<Communicator> make_world_communicator();

// dp × ep: expert-parallel groups are blocks of `ep` consecutive ranks (inside a
// node on a cluster); data-parallel groups stride across them.
struct ProcessMesh {
  int world = 1, ep = 1, dp = 1;
  int rank = 0, ep_rank = 0, dp_rank = 0;
  std::unique_ptr<Communicator> world_comm;
  std::unique_ptr<Communicator> ep_comm;  // the ranks of my expert-parallel group
  std::unique_ptr<Communicator> dp_comm;  // the ranks that hold the same experts as I do

  // Throws Error(bad_input) if the world cannot be cut into groups of `ep`, or the
  // experts into `ep` equal shares. With `device` cuda and more than one rank, the
  // communicators move GPU tensors through NCCL (host data still through MPI).
  static ProcessMesh make(int expert_parallel, int64_t num_experts, Device device = Device::cpu);
};

}  // namespace sy
