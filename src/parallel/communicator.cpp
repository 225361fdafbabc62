#include "parallel/communicator.h"

#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/errors.h"
#include "core/process.h"
#ifdef SWITCHYARD_NCCL
#include "parallel/nccl/nccl_communicator.h"
#endif

namespace sy {
namespace {

// A collective that was over as soon as it started.
class Done final : public PendingCollective {
 public:
  bool test() override { return true; }
  void wait() override {}
};
std::unique_ptr<PendingCollective> done() { return std::make_unique<Done>(); }

// A world of one: every collective is the identity.
class SoloCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "single process"; }
  std::unique_ptr<PendingCollective> start_all_reduce_sum(Tensor) override { return done(); }
  std::unique_ptr<PendingCollective> start_reduce_scatter_sum(Tensor, Tensor) override { return done(); }
  std::unique_ptr<PendingCollective> start_all_gather(Tensor) override { return done(); }
  void all_reduce_sum(Tensor) override {}
  void all_reduce_sum(std::vector<double>&) override {}
  int64_t all_reduce_max(int64_t v) override { return v; }
  void all_to_all_v(const Tensor& send, const std::vector<int64_t>& send_rows, Tensor recv,
                    const std::vector<int64_t>& recv_rows, int64_t row_elems) override {
    SY_CHECK(send_rows.size() == 1 && recv_rows.size() == 1 && send_rows[0] == recv_rows[0],
             "solo all_to_all_v counts");
    std::memcpy(recv.ptr, send.ptr, static_cast<size_t>(send_rows[0] * row_elems) * dtype_size(send.dtype));
  }
  void all_to_all(const std::vector<int64_t>& send, std::vector<int64_t>& recv) override { recv = send; }
  void broadcast(Tensor, int) override {}
  void barrier() override {}
  std::unique_ptr<Communicator> split(int, int) override { return std::make_unique<SoloCommunicator>(); }
};

}  // namespace

Slice slice_of(int64_t n, int P, int r) {
  const int64_t base = n / P, extra = n % P;
  return {r * base + std::min<int64_t>(r, extra), base + (r < extra ? 1 : 0)};
}

namespace {

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT;
  }
  return MPI_BYTE;
}

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) fatalf(ExitCode::peer_failed, "MPI {} failed (code {})", what, rc);
}

class MpiCommunicator final : public Communicator {
  // One non-blocking collective (MPI_Iallreduce, MPI_Ireduce_scatter into
  // `scratch` with the slice copied back into place when it completes, or
  // MPI_Iallgatherv in place), driven by test() / wait(). One collective per
  // object: every rank starts them in the same order, as MPI requires, whatever
  // the order they complete in.
  class MpiReduction final : public PendingCollective {
   public:
    enum Kind { all_reduce, reduce_scatter, all_gather };
    MpiReduction(MpiCommunicator& c, Kind kind, Tensor x, Tensor scratch)
        : c_(c), kind_(kind), x_(x), scratch_(scratch) {
      const int P = c.size_;
      if (P == 1 || x.numel() == 0) return;
      // MPI counts are ints (parallel.bucket_mb is capped well below this).
      SY_CHECK(x.numel() <= std::numeric_limits<int>::max(),
               "a reduction of {} elements exceeds MPI's int counts: lower parallel.bucket_mb "
               "(a single parameter this large is not supported)", x.numel());
      if (kind == all_reduce) {
        check(MPI_Iallreduce(MPI_IN_PLACE, x.ptr, static_cast<int>(x.numel()), mpi_type(x.dtype), MPI_SUM,
                             c.comm_, &req_),
              "all-reduce");
        return;
      }
      counts_.resize(P);
      displs_.resize(P);
      for (int r = 0; r < P; ++r) {
        const Slice sl = slice_of(x.numel(), P, r);
        counts_[r] = static_cast<int>(sl.size);
        displs_[r] = static_cast<int>(sl.begin);
      }
      if (kind == reduce_scatter) {
        SY_CHECK(scratch.numel() >= counts_[c.rank_] && scratch.dtype == x.dtype,
                 "reduce-scatter scratch of {} elements, the slice has {}", scratch.numel(), counts_[c.rank_]);
        check(MPI_Ireduce_scatter(x.ptr, scratch.ptr, counts_.data(), mpi_type(x.dtype), MPI_SUM, c.comm_,
                                  &req_),
              "reduce-scatter");
      } else {
        check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x.ptr, counts_.data(), displs_.data(),
                              mpi_type(x.dtype), c.comm_, &req_),
              "all-gather");
      }
    }
    ~MpiReduction() override { wait(); }
    bool test() override {
      if (req_ == MPI_REQUEST_NULL) return true;
      int done = 0;
      check(MPI_Test(&req_, &done, MPI_STATUS_IGNORE), "test");
      if (done) completed();
      return done != 0;
    }
    void wait() override {
      if (req_ == MPI_REQUEST_NULL) return;
      check(MPI_Wait(&req_, MPI_STATUS_IGNORE), "wait");
      completed();
    }

   private:
    void completed() {  // (MPI has set req_ to MPI_REQUEST_NULL)
      if (kind_ != reduce_scatter) return;
      const size_t w = dtype_size(x_.dtype);
      std::memcpy(static_cast<char*>(x_.ptr) + static_cast<size_t>(displs_[c_.rank_]) * w, scratch_.ptr,
                  static_cast<size_t>(counts_[c_.rank_]) * w);
    }
    MpiCommunicator& c_;
    Kind kind_;
    Tensor x_, scratch_;
    std::vector<int> counts_, displs_;
    MPI_Request req_ = MPI_REQUEST_NULL;
  };

 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm_ != MPI_COMM_WORLD) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return fmt::format("MPI, {} ranks", size_); }

  std::unique_ptr<PendingCollective> start_all_reduce_sum(Tensor x) override {
    return std::make_unique<MpiReduction>(*this, MpiReduction::all_reduce, x, Tensor{});
  }
  std::unique_ptr<PendingCollective> start_reduce_scatter_sum(Tensor x, Tensor scratch) override {
    return std::make_unique<MpiReduction>(*this, MpiReduction::reduce_scatter, x, scratch);
  }
  std::unique_ptr<PendingCollective> start_all_gather(Tensor x) override {
    return std::make_unique<MpiReduction>(*this, MpiReduction::all_gather, x, Tensor{});
  }
  void all_reduce_sum(Tensor x) override {
    if (size_ == 1 || x.numel() == 0) return;
    SY_CHECK(x.numel() <= std::numeric_limits<int>::max(), "an all-reduce of {} elements exceeds MPI's int counts",
             x.numel());
    check(MPI_Allreduce(MPI_IN_PLACE, x.ptr, static_cast<int>(x.numel()), mpi_type(x.dtype), MPI_SUM, comm_),
          "all-reduce");
  }

  // Small host vectors: all-gather, then a sum in rank order (size× the traffic of
  // a reduction, which does not matter for a few values).
  void all_reduce_sum(std::vector<double>& v) override {
    if (size_ == 1 || v.empty()) return;
    const int n = static_cast<int>(v.size());
    gather_.resize(v.size() * sizeof(double) * static_cast<size_t>(size_));
    check(MPI_Allgather(v.data(), n, MPI_DOUBLE, gather_.data(), n, MPI_DOUBLE, comm_),
          "all-gather (small all-reduce)");
    sum_in_order<double>(v.data(), n);
  }
  int64_t all_reduce_max(int64_t v) override {
    long long in = v, out = 0;
    check(MPI_Allreduce(&in, &out, 1, MPI_LONG_LONG, MPI_MAX, comm_), "all-reduce max");
    return out;
  }
  void all_to_all_v(const Tensor& send, const std::vector<int64_t>& send_rows, Tensor recv,
                    const std::vector<int64_t>& recv_rows, int64_t row_elems) override {
    std::vector<int> sc(size_), sd(size_), rc(size_), rd(size_);
    int64_t so = 0, ro = 0;
    for (int j = 0; j < size_; ++j) {
      sc[j] = static_cast<int>(send_rows[j] * row_elems);
      rc[j] = static_cast<int>(recv_rows[j] * row_elems);
      sd[j] = static_cast<int>(so);
      rd[j] = static_cast<int>(ro);
      so += sc[j];
      ro += rc[j];
    }
    SY_CHECK(so <= send.numel() && ro <= recv.numel(), "all_to_all_v buffers too small");
    check(MPI_Alltoallv(send.ptr, sc.data(), sd.data(), mpi_type(send.dtype), recv.ptr, rc.data(),
                        rd.data(), mpi_type(recv.dtype), comm_),
          "all-to-all");
  }
  void all_to_all(const std::vector<int64_t>& send, std::vector<int64_t>& recv) override {
    const int n = static_cast<int>(send.size()) / size_;
    recv.resize(send.size());
    std::vector<long long> s(send.begin(), send.end()), r(send.size());
    check(MPI_Alltoall(s.data(), n, MPI_LONG_LONG, r.data(), n, MPI_LONG_LONG, comm_), "all-to-all counts");
    recv.assign(r.begin(), r.end());
  }
  void broadcast(Tensor x, int root) override {
    check(MPI_Bcast(x.ptr, static_cast<int>(x.numel()), mpi_type(x.dtype), root, comm_), "broadcast");
  }
  void barrier() override { check(MPI_Barrier(comm_), "barrier"); }
  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub;
    check(MPI_Comm_split(comm_, color, key, &sub), "communicator split");
    return std::make_unique<MpiCommunicator>(sub);
  }

 private:
  template <class T>
  void sum_in_order(T* out, int64_t n) {
    const T* parts = reinterpret_cast<const T*>(gather_.data());
    for (int64_t i = 0; i < n; ++i) {
      T s = parts[i];
      for (int r = 1; r < size_; ++r) s += parts[static_cast<int64_t>(r) * n + i];
      out[i] = s;
    }
  }
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<char> gather_;
};

}  // namespace

std::unique_ptr<Communicator> make_world_communicator() {
  if (mpi_active()) return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
  return std::make_unique<SoloCommunicator>();
}

ProcessMesh ProcessMesh::make(int expert_parallel, int64_t num_experts, Device device) {
  ProcessMesh m;
  m.world_comm = make_world_communicator();
  if (device == Device::cuda && m.world_comm->size() > 1) {
#ifdef SWITCHYARD_NCCL
    m.world_comm = make_nccl_communicator(std::move(m.world_comm));  // its splits are NCCL too
#else
    throw Error(ExitCode::bad_input,
                "backend 'cuda' on several ranks needs NCCL, and this switchyard was built "
                "without CUDA; rebuild with -DSWITCHYARD_CUDA=ON");
#endif
  }
  m.world = m.world_comm->size();
  m.rank = m.world_comm->rank();
  m.ep = expert_parallel;
  if (m.ep < 1 || m.world % m.ep != 0)
    throw Error(ExitCode::bad_input,
                fmt::format("parallel.expert_parallel = {}: must divide the number of ranks ({})",
                            m.ep, m.world));
  if (m.ep > 1 && (num_experts == 0 || num_experts % m.ep != 0))
    throw Error(ExitCode::bad_input,
                fmt::format("parallel.expert_parallel = {}: must divide moe.num_experts ({})", m.ep,
                            num_experts));
  m.dp = m.world / m.ep;
  m.ep_rank = m.rank % m.ep;
  m.dp_rank = m.rank / m.ep;
  m.ep_comm = m.world_comm->split(m.dp_rank, m.ep_rank);  // consecutive ranks
  m.dp_comm = m.world_comm->split(m.ep_rank, m.dp_rank);  // strided: same experts
  return m;
}

}  // namespace sy
