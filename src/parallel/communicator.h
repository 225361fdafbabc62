#pragma once
// How ranks talk. The trainer and the MoE dispatcher use this interface only;
// model code and routers never see it. Every collective is deterministic: the
// same inputs on the same number of ranks give the same bits, every run.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace sy {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;

  // x ← Σ_ranks x, summed in rank order (identical bits on every rank).
  virtual void all_reduce_sum(Tensor x) = 0;
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
