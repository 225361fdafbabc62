// NCCL communicator. Tensors on the GPU go through NCCL; host tensors, host vectors
// and control (barrier, max, counts) through the wrapped MPI communicator.
//
// Reductions are NCCL's own: ncclAllReduce (ring: every rank ends with the same
// bits, about 2·n·(P−1)/P per rank), and for ZeRO a reduce-scatter and an
// all-gather over the slices of slice_of() as grouped ncclReduce / ncclBroadcast
// (one per owner: NCCL's own reduce-scatter wants equal slices). NCCL is
// deterministic for a given size, rank count, algorithm and protocol; set
// NCCL_ALGO=Ring and NCCL_PROTO=Simple to pin them across machines.
//
// Waiting for NCCL never blocks blindly: the wait polls the stream, NCCL's
// asynchronous error (a peer that died, a broken connection) and the collective
// timeout; on either failure the communicator is aborted and the job ends through
// the fatal path with exit 6 (peer failed), without waiting for the step watchdog.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <exception>
#include <thread>

#include "core/errors.h"
#include "core/process.h"
#include "parallel/nccl/nccl_communicator.h"

namespace sy {
namespace {

#define SY_NCCL(call)                                                                        \
  do {                                                                                       \
    const ncclResult_t sy_r_ = (call);                                                       \
    if (sy_r_ != ncclSuccess)                                                                \
      fatalf(ExitCode::peer_failed, "NCCL error '{}' in {} at {}:{}", ncclGetErrorString(sy_r_), \
             #call, __FILE__, __LINE__);                                                     \
  } while (0)

#define SY_CUDA_RT(call)                                                                     \
  do {                                                                                       \
    const cudaError_t sy_e_ = (call);                                                        \
    if (sy_e_ != cudaSuccess)                                                                \
      fatalf(ExitCode::internal, "CUDA error '{}' in {} at {}:{}", cudaGetErrorString(sy_e_), \
             #call, __FILE__, __LINE__);                                                     \
  } while (0)

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::i32: return ncclInt32;
  }
  return ncclChar;
}

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(std::unique_ptr<Communicator> host) : host_(std::move(host)) {
    ncclUniqueId id{};
    if (host_->rank() == 0) SY_NCCL(ncclGetUniqueId(&id));
    Tensor t;  // the id travels as bytes through the host communicator
    t.ptr = &id;
    t.dtype = DType::i32;
    t.ndim = 1;
    t.dims[0] = sizeof(id) / sizeof(int32_t);
    host_->broadcast(t, 0);
    SY_NCCL(ncclCommInitRank(&comm_, host_->size(), id, host_->rank()));
    SY_CUDA_RT(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  // Checked to the end: an error here is a fault nothing waited for before. While an
  // error unwinds the stack, the peers may be waiting in a collective that will
  // never come: finalising would wait for them (NCCL's teardown barrier has no
  // timeout), so the communicator is aborted instead and the error reaches the
  // fatal path that ends every rank.
  ~NcclCommunicator() override {
    if (std::uncaught_exceptions() > 0) {
      if (comm_) ncclCommAbort(comm_);
      return;
    }
    if (comm_) {
      SY_NCCL(ncclCommFinalize(comm_));  // flushes what is still in flight
      SY_NCCL(ncclCommDestroy(comm_));
    }
    if (ready_) SY_CUDA_RT(cudaEventDestroy(ready_));
    SY_CUDA_RT(cudaStreamDestroy(stream_));
  }
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  std::string describe() const override {
    int version = 0;
    SY_NCCL(ncclGetVersion(&version));
    return fmt::format("NCCL {} over {} ", version, host_->describe());
  }

  // A collective on the communicator's stream; finished when the stream is.
  class NcclPending final : public PendingCollective {
   public:
    NcclPending(NcclCommunicator& c, const char* what) : c_(c), what_(what) {}
    ~NcclPending() override { wait(); }
    bool test() override {
      if (done_) return true;
      const cudaError_t e = cudaStreamQuery(c_.stream_);
      if (e == cudaErrorNotReady) return false;
      wait();  // finished (or failed: wait() reports it)
      return true;
    }
    void wait() override {
      if (done_) return;
      c_.end(what_);
      done_ = true;
    }

   private:
    NcclCommunicator& c_;
    const char* what_;
    bool done_ = false;
  };

  std::unique_ptr<PendingCollective> start_all_reduce_sum(Tensor x) override {
    if (x.device != Device::cuda) return host_->start_all_reduce_sum(x);
    if (size() == 1 || x.numel() == 0) return std::make_unique<NcclPending>(*this, "all-reduce");
    begin();
    SY_NCCL(ncclAllReduce(x.ptr, x.ptr, static_cast<size_t>(x.numel()), nccl_type(x.dtype), ncclSum,
                          comm_, stream_));
    return std::make_unique<NcclPending>(*this, "all-reduce");
  }
  std::unique_ptr<PendingCollective> start_reduce_scatter_sum(Tensor x, Tensor scratch) override {
    if (x.device != Device::cuda) return host_->start_reduce_scatter_sum(x, scratch);
    begin();
    const size_t w = dtype_size(x.dtype);
    SY_NCCL(ncclGroupStart());
    for (int r = 0; r < size(); ++r) {
      const Slice sl = slice_of(x.numel(), size(), r);
      if (sl.size == 0) continue;
      char* at = static_cast<char*>(x.ptr) + static_cast<size_t>(sl.begin) * w;
      SY_NCCL(ncclReduce(at, at, static_cast<size_t>(sl.size), nccl_type(x.dtype), ncclSum, r, comm_,
                         stream_));
    }
    SY_NCCL(ncclGroupEnd());
    return std::make_unique<NcclPending>(*this, "reduce-scatter");
  }
  std::unique_ptr<PendingCollective> start_all_gather(Tensor x) override {
    if (x.device != Device::cuda) return host_->start_all_gather(x);
    begin();
    const size_t w = dtype_size(x.dtype);
    SY_NCCL(ncclGroupStart());
    for (int r = 0; r < size(); ++r) {
      const Slice sl = slice_of(x.numel(), size(), r);
      if (sl.size == 0) continue;
      char* at = static_cast<char*>(x.ptr) + static_cast<size_t>(sl.begin) * w;
      SY_NCCL(ncclBroadcast(at, at, static_cast<size_t>(sl.size), nccl_type(x.dtype), r, comm_, stream_));
    }
    SY_NCCL(ncclGroupEnd());
    return std::make_unique<NcclPending>(*this, "all-gather");
  }
  void all_reduce_sum(Tensor x) override {
    if (x.device != Device::cuda) return host_->all_reduce_sum(x);
    start_all_reduce_sum(x)->wait();
  }
  void all_reduce_sum(std::vector<double>& v) override { host_->all_reduce_sum(v); }
  int64_t all_reduce_max(int64_t v) override { return host_->all_reduce_max(v); }

  // Grouped point-to-point: one send and one receive per peer, in rank order.
  void all_to_all_v(const Tensor& send, const std::vector<int64_t>& send_rows, Tensor recv,
                    const std::vector<int64_t>& recv_rows, int64_t row_elems) override {
    if (send.device != Device::cuda)
      return host_->all_to_all_v(send, send_rows, recv, recv_rows, row_elems);
    const size_t elem = dtype_size(send.dtype);
    int64_t so = 0, ro = 0;
    for (int j = 0; j < size(); ++j) {
      so += send_rows[j] * row_elems;
      ro += recv_rows[j] * row_elems;
    }
    SY_CHECK(so <= send.numel() && ro <= recv.numel(), "all_to_all_v buffers too small");
    begin();
    SY_NCCL(ncclGroupStart());
    so = ro = 0;
    for (int j = 0; j < size(); ++j) {
      const size_t sc = static_cast<size_t>(send_rows[j] * row_elems);
      const size_t rc = static_cast<size_t>(recv_rows[j] * row_elems);
      if (sc) SY_NCCL(ncclSend(static_cast<const char*>(send.ptr) + so * elem, sc,
                               nccl_type(send.dtype), j, comm_, stream_));
      if (rc) SY_NCCL(ncclRecv(static_cast<char*>(recv.ptr) + ro * elem, rc,
                               nccl_type(recv.dtype), j, comm_, stream_));
      so += static_cast<int64_t>(sc);
      ro += static_cast<int64_t>(rc);
    }
    SY_NCCL(ncclGroupEnd());
    end("all-to-all");
  }
  void all_to_all(const std::vector<int64_t>& send, std::vector<int64_t>& recv) override {
    host_->all_to_all(send, recv);
  }
  void broadcast(Tensor x, int root) override {
    if (x.device != Device::cuda) return host_->broadcast(x, root);
    begin();
    SY_NCCL(ncclBroadcast(x.ptr, x.ptr, static_cast<size_t>(x.numel()), nccl_type(x.dtype), root,
                          comm_, stream_));
    end("broadcast");
  }
  void barrier() override { host_->barrier(); }
  std::unique_ptr<Communicator> split(int color, int key) override {
    return std::make_unique<NcclCommunicator>(host_->split(color, key));
  }

 private:
  // The compute stream's work must be done before NCCL reads its tensors: NCCL's
  // stream waits for an event recorded on it, so the host goes on (to the next
  // layer's backward) while the collective runs. Without a registered compute stream
  // the whole device is synchronised (safe, and blocking). The caller reads the
  // results only after wait() / end() has seen NCCL's stream finish.
  void begin() {
    cudaStream_t compute = static_cast<cudaStream_t>(compute_stream());
    if (!compute) {
      SY_CUDA_RT(cudaDeviceSynchronize());
      return;
    }
    if (!ready_) SY_CUDA_RT(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    SY_CUDA_RT(cudaEventRecord(ready_, compute));
    SY_CUDA_RT(cudaStreamWaitEvent(stream_, ready_, 0));
  }
  void end(const char* what) {
    const auto start = std::chrono::steady_clock::now();
    const double limit = collective_timeout();
    for (;;) {
      const cudaError_t e = cudaStreamQuery(stream_);
      if (e == cudaSuccess) return;
      if (e != cudaErrorNotReady)
        fatalf(ExitCode::internal, "CUDA error '{}' while waiting for NCCL {}", cudaGetErrorString(e),
               what);
      ncclResult_t async = ncclSuccess;
      SY_NCCL(ncclCommGetAsyncError(comm_, &async));
      if (async != ncclSuccess && async != ncclInProgress)
        abort_and_fail(what, fmt::format("NCCL reports '{}': {}", ncclGetErrorString(async),
                                         ncclGetLastError(comm_)));
      const double waited =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (limit > 0 && waited > limit)
        abort_and_fail(what, fmt::format("no progress for {:.0f} s (parallel.step_timeout_s)", waited));
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
  // Aborting frees this rank from NCCL's kernels; fatal() then ends every rank.
  [[noreturn]] void abort_and_fail(const char* what, const std::string& why) {
    ncclCommAbort(comm_);  // its result no longer matters: the job ends either way
    comm_ = nullptr;
    fatalf(ExitCode::peer_failed, "NCCL {} on rank {} of {} failed: {}; a peer rank has stalled or died",
           what, rank(), size(), why);
  }


  std::unique_ptr<Communicator> host_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;  // recorded on the compute stream by begin()
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> host) {
  return std::make_unique<NcclCommunicator>(std::move(host));
}

}  // namespace sy
