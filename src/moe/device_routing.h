#pragma once
// Routing rules as device algorithms: the rules of routing.h (their host versions
// are the oracle) written with Thrust, one source for every backend. nvcc compiles
// it for the GPU; g++ compiles the same source for Thrust's OpenMP backend, which
// is how CPU CI runs it (tests/moe/test_device_routing.cpp, `…Oracle…`).
//
// Token choice is one algorithm for every rule: each token's candidates (rank 0 its
// first choice, rank 1 its second, …) sorted by (expert, rank, token), a running
// position within each expert (an exclusive scan by key), and the first `capacity`
// of each expert kept. That is the host's "slots filled rank by rank, tokens in
// order", with the same dispatch order. Expert choice sorts every (expert, token)
// pair by (expert, value descending, token) and keeps each expert's first C.
// Ties break as everywhere: the larger value, then the smaller index.
#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/functional.h>
#include <thrust/iterator/constant_iterator.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/remove.h>
#include <thrust/scan.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>
#include <thrust/transform.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>

#if defined(__CUDACC__)
#define SY_HD __host__ __device__
#else
#define SY_HD
#endif

namespace sy::device_routing {

// One (token, expert) choice of a token: `rank` is which of its choices it is
// (the capacity pass it is placed in); expert < 0 marks no choice.
struct Candidate {
  int32_t rank, token, expert;
  double gate;
};

// A group's routing on the device: the kept choices in dispatch order (by expert,
// then slot), as GroupRoute::choices.
struct DeviceRoute {
  thrust::device_vector<int32_t> token, expert;
  thrust::device_vector<double> gate;
  int64_t dropped = 0;
};

// The largest of row[0..E) other than `skip` (ties: the smaller index).
template <class T>
SY_HD inline int32_t argmax_row(const T* row, int64_t E, int64_t skip = -1) {
  int32_t best = -1;
  for (int64_t e = 0; e < E; ++e)
    if (e != skip && (best < 0 || row[e] > row[best])) best = static_cast<int32_t>(e);
  return best;
}

struct ByExpertRankToken {
  SY_HD bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.expert != b.expert) return a.expert < b.expert;
    if (a.rank != b.rank) return a.rank < b.rank;
    return a.token < b.token;
  }
};
struct NoChoice {
  SY_HD bool operator()(const Candidate& c) const { return c.expert < 0; }
};
struct ExpertOf {
  SY_HD int32_t operator()(const Candidate& c) const { return c.expert; }
};
struct Fits {
  int64_t capacity;
  SY_HD bool operator()(int64_t position) const { return position < capacity; }
};
struct TokenOf {
  SY_HD int32_t operator()(const Candidate& c) const { return c.token; }
};
struct GateOf {
  SY_HD double operator()(const Candidate& c) const { return c.gate; }
};

// Kept choices in dispatch order → a route (its three columns).
inline DeviceRoute route_of(const thrust::device_vector<Candidate>& kept) {
  DeviceRoute r;
  r.token.resize(kept.size());
  r.expert.resize(kept.size());
  r.gate.resize(kept.size());
  thrust::transform(thrust::device, kept.begin(), kept.end(), r.token.begin(), TokenOf{});
  thrust::transform(thrust::device, kept.begin(), kept.end(), r.expert.begin(), ExpertOf{});
  thrust::transform(thrust::device, kept.begin(), kept.end(), r.gate.begin(), GateOf{});
  return r;
}

// Candidates (any order; expert < 0 entries ignored) → each expert's first
// `capacity` by (rank, token), in dispatch order.
inline DeviceRoute place(thrust::device_vector<Candidate> cand, int64_t capacity) {
  cand.erase(thrust::remove_if(thrust::device, cand.begin(), cand.end(), NoChoice{}), cand.end());
  const int64_t n = static_cast<int64_t>(cand.size());
  thrust::sort(thrust::device, cand.begin(), cand.end(), ByExpertRankToken{});
  thrust::device_vector<int32_t> experts(n);
  thrust::transform(thrust::device, cand.begin(), cand.end(), experts.begin(), ExpertOf{});
  thrust::device_vector<int64_t> position(n);  // within its expert, in placing order
  thrust::exclusive_scan_by_key(thrust::device, experts.begin(), experts.end(),
                                thrust::constant_iterator<int64_t>(1), position.begin());
  thrust::device_vector<Candidate> kept(n);
  auto end = thrust::copy_if(thrust::device, cand.begin(), cand.end(), position.begin(), kept.begin(),
                             Fits{capacity});
  kept.erase(end, kept.end());
  DeviceRoute r = route_of(kept);
  r.dropped = n - static_cast<int64_t>(kept.size());
  return r;
}

// ---- switch_top1: the argmax, gate p -----------------------------------------------
template <class T>
struct SwitchCandidate {
  const T* p;
  int64_t E;
  SY_HD Candidate operator()(int64_t t) const {
    const int32_t e = argmax_row(p + t * E, E);
    return {0, static_cast<int32_t>(t), e, static_cast<double>(p[t * E + e])};
  }
};

template <class T>
DeviceRoute switch_top1(const thrust::device_vector<T>& p, int64_t S, int64_t E, int64_t capacity) {
  thrust::device_vector<Candidate> cand(S);
  thrust::transform(thrust::device, thrust::counting_iterator<int64_t>(0), thrust::counting_iterator<int64_t>(S),
                    cand.begin(), SwitchCandidate<T>{thrust::raw_pointer_cast(p.data()), E});
  return place(std::move(cand), capacity);
}

// ---- gshard_top2: the pair, gates renormalised over it; the second kept when
// 2·g2 > u_t (u null: always) ----------------------------------------------------------
template <class T>
struct GshardCandidate {
  const T* p;
  const float* u;  // may be null
  int64_t E, S;
  SY_HD Candidate operator()(int64_t i) const {  // i < S: first choices; then second
    const int64_t t = i % S;
    const int32_t rank = static_cast<int32_t>(i / S);
    const T* row = p + t * E;
    const int32_t e1 = argmax_row(row, E), e2 = argmax_row(row, E, e1);
    const double a = static_cast<double>(row[e1]), b = static_cast<double>(row[e2]);
    const double g = (rank == 0 ? a : b) / (a + b);
    if (rank == 1 && u && !(2.0 * g > static_cast<double>(u[t]))) return {rank, static_cast<int32_t>(t), -1, 0.0};
    return {rank, static_cast<int32_t>(t), rank == 0 ? e1 : e2, g};
  }
};

template <class T>
DeviceRoute gshard_top2(const thrust::device_vector<T>& p, int64_t S, int64_t E, int64_t capacity,
                        const thrust::device_vector<float>* second_uniform) {
  thrust::device_vector<Candidate> cand(2 * S);
  const float* u = second_uniform ? thrust::raw_pointer_cast(second_uniform->data()) : nullptr;
  thrust::transform(thrust::device, thrust::counting_iterator<int64_t>(0),
                    thrust::counting_iterator<int64_t>(2 * S), cand.begin(),
                    GshardCandidate<T>{thrust::raw_pointer_cast(p.data()), u, E, S});
  return place(std::move(cand), capacity);
}

// ---- noisy_topk: each token's top-k of h, gates a softmax over the k ----------------
constexpr int64_t kMaxTopK = 64;  // TopkCandidate's chosen[]
template <class T>
struct TopkCandidate {
  const T* h;
  int64_t E, k;
  SY_HD Candidate operator()(int64_t i) const {  // i = t·k + j: token t's j-th choice
    const int64_t t = i / k, j = i % k;
    const T* row = h + t * E;
    // The j + 1 largest, one by one (k is small): each the largest not yet taken.
    int32_t chosen[kMaxTopK];
    double z = 0, mine = 0;
    for (int64_t r = 0; r < k; ++r) {
      int32_t best = -1;
      for (int64_t e = 0; e < E; ++e) {
        bool taken = false;
        for (int64_t q = 0; q < r; ++q) taken = taken || chosen[q] == e;
        if (!taken && (best < 0 || row[e] > row[best])) best = static_cast<int32_t>(e);
      }
      chosen[r] = best;
      const double w = exp(static_cast<double>(row[best] - row[chosen[0]]));
      z += w;
      if (r == j) mine = w;
    }
    return {static_cast<int32_t>(j), static_cast<int32_t>(t), chosen[j], mine / z};
  }
};

template <class T>
DeviceRoute noisy_topk(const thrust::device_vector<T>& h, int64_t S, int64_t E, int64_t k, int64_t capacity) {
  if (k < 1 || k > kMaxTopK || k > E) throw std::invalid_argument("noisy_topk: k outside [1, min(E, 64)]");
  thrust::device_vector<Candidate> cand(S * k);
  thrust::transform(thrust::device, thrust::counting_iterator<int64_t>(0),
                    thrust::counting_iterator<int64_t>(S * k), cand.begin(),
                    TopkCandidate<T>{thrust::raw_pointer_cast(h.data()), E, k});
  return place(std::move(cand), capacity);
}

// ---- expert_choice: each expert's top-C tokens by p[:, e], gate p -------------------
template <class T>
struct ByExpertValueToken {  // over indices i = t·E + e of p [S, E]
  const T* p;
  int64_t E;
  SY_HD bool operator()(int64_t a, int64_t b) const {
    const int64_t ea = a % E, eb = b % E;
    if (ea != eb) return ea < eb;
    if (p[a] != p[b]) return p[a] > p[b];
    return a < b;  // same expert: the smaller token
  }
};
template <class T>
struct ExpertSlot {  // slot k = e·C + r ← the r-th of expert e's sorted entries
  const int64_t* order;
  const T* p;
  int64_t S, E, C;
  SY_HD Candidate operator()(int64_t k) const {
    const int64_t i = order[(k / C) * S + k % C];
    return {0, static_cast<int32_t>(i / E), static_cast<int32_t>(i % E), static_cast<double>(p[i])};
  }
};

template <class T>
DeviceRoute expert_choice(const thrust::device_vector<T>& p, int64_t S, int64_t E, int64_t capacity) {
  thrust::device_vector<int64_t> order(S * E);
  thrust::sequence(thrust::device, order.begin(), order.end());
  const T* pp = thrust::raw_pointer_cast(p.data());
  thrust::sort(thrust::device, order.begin(), order.end(), ByExpertValueToken<T>{pp, E});
  thrust::device_vector<Candidate> slots(E * capacity);
  thrust::transform(thrust::device, thrust::counting_iterator<int64_t>(0),
                    thrust::counting_iterator<int64_t>(E * capacity), slots.begin(),
                    ExpertSlot<T>{thrust::raw_pointer_cast(order.data()), pp, S, E, capacity});
  return route_of(slots);
}

}  // namespace sy::device_routing
