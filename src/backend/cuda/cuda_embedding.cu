// Token + position embedding on the GPU. The backward adds repeated ids without
// atomics: the ids are bucketed by vocabulary row on the host (positions ascending,
// the CPU's order), then one thread per (row, channel) sums its bucket in order,
// so dwte is deterministic and equal to the CPU's sums.
#include "backend/cuda/cuda_ops_impl.h"

namespace sy {
namespace {

// out [B,T,C] = wte[ids] + wpe[t]
__global__ void embed_fwd(float* out, const int32_t* ids, const float* wte, const float* wpe,
                          int64_t BT, int64_t Tn, int64_t C) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= BT * C) return;
  const int64_t i = o / C, c = o % C;
  out[o] = wte[static_cast<int64_t>(ids[i]) * C + c] + wpe[(i % Tn) * C + c];
}

// dwte[v, c] += Σ_{positions i with ids[i] = v, ascending} dout[i, c].
// csr: begin [V+1] then positions [BT], as built by embedding_backward.
__global__ void embed_bwd_wte(float* dwte, const float* dout, const int32_t* csr, int64_t V,
                              int64_t C) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= V * C) return;
  const int64_t v = o / C, c = o % C;
  const int32_t* begin = csr;
  const int32_t* positions = csr + V + 1;
  if (begin[v] == begin[v + 1]) return;
  float acc = dwte[o];
  for (int32_t j = begin[v]; j < begin[v + 1]; ++j) acc += dout[static_cast<int64_t>(positions[j]) * C + c];
  dwte[o] = acc;
}

// dwpe[t, c] += Σ_b dout[b, t, c], b ascending.
__global__ void embed_bwd_wpe(float* dwpe, const float* dout, int64_t B, int64_t Tn, int64_t C) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= Tn * C) return;
  float acc = dwpe[o];
  for (int64_t b = 0; b < B; ++b) acc += dout[b * Tn * C + o];
  dwpe[o] = acc;
}

}  // namespace

// Token ids index wte: they are range-checked on a host copy first (the front
// checks host-resident ids only), as bad input naming the position.
void CudaOps::embedding_forward_impl(Tensor out, const Tensor& ids, const Tensor& wte,
                                     const Tensor& wpe) {
  const int64_t B = ids.dim(0), Tn = ids.dim(1), V = wte.dim(0), C = wte.dim(1);
  indices_to_host(ids);
  check_token_ids(host_view(ids), V);
  embed_fwd<<<cuda::blocks_for(B * Tn * C), cuda::kBlock, 0, stream_>>>(
      out.data<float>(), ids.data<int32_t>(), wte.data<float>(), wpe.data<float>(), B * Tn, Tn, C);
  SY_CUDA_LAUNCHED();
}

void CudaOps::embedding_backward_impl(Tensor dwte, Tensor dwpe, const Tensor& dout,
                                      const Tensor& ids) {
  const int64_t B = ids.dim(0), Tn = ids.dim(1), V = dwte.dim(0), C = dwte.dim(1), BT = B * Tn;
  // Counting sort of positions by id (stable: positions ascending within an id).
  const std::vector<int32_t>& id = indices_to_host(ids);
  check_token_ids(host_view(ids), V);  // the sort below indexes by id
  host_csr_.assign(static_cast<size_t>(V + 1 + BT), 0);
  int32_t* begin = host_csr_.data();
  int32_t* positions = begin + V + 1;
  for (int32_t v : id) ++begin[v + 1];
  for (int64_t v = 0; v < V; ++v) begin[v + 1] += begin[v];
  std::vector<int32_t> next(begin, begin + V);
  for (int64_t i = 0; i < BT; ++i) positions[next[id[i]]++] = static_cast<int32_t>(i);
  int32_t* csr = static_cast<int32_t*>(scratch(host_csr_.size() * sizeof(int32_t)));
  SY_CUDA(cudaMemcpyAsync(csr, host_csr_.data(), host_csr_.size() * sizeof(int32_t),
                          cudaMemcpyHostToDevice, stream_));
  embed_bwd_wte<<<cuda::blocks_for(V * C), cuda::kBlock, 0, stream_>>>(
      dwte.data<float>(), dout.data<float>(), csr, V, C);
  SY_CUDA_LAUNCHED();
  if (!dwpe.empty()) {
    embed_bwd_wpe<<<cuda::blocks_for(Tn * C), cuda::kBlock, 0, stream_>>>(
        dwpe.data<float>(), dout.data<float>(), B, Tn, C);
    SY_CUDA_LAUNCHED();
  }
  // host_csr_ must outlive the asynchronous copy.
  SY_CUDA(cudaStreamSynchronize(stream_));
}

}  // namespace sy
