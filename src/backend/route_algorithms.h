#pragma once
// MoE routing on a backend's own memory, one source for two backends: CpuOps
// compiles it with g++ for Thrust's OpenMP system (cpu_route.cpp), CudaOps with
// nvcc for the CUDA system (cuda_route.cu). Only backend code includes it; the
// contract is Ops::route_plan / Ops::route_backward (ops.h), and the host rules of
// src/moe/routing.h are its oracle (tests/moe/test_route_ops.cpp).
//
// Every routine takes the caller's Thrust policy, bound to a BumpAllocator over the
// op's scratch, and never asks the device for a size: no algorithm that returns a
// count (copy_if, remove_if, reduce) is used, outputs have fixed sizes (slots are
// padded: E·G·C of them, −1 where empty), and sums are taken in fixed chunks in a
// fixed order, so results do not depend on the device or its thread count.
//
// Token choice is one algorithm for every rule: each token's candidates (rank 0 its
// first choice, rank 1 its second) sorted by (group, expert, rank, member); the
// position within each (group, expert) is an exclusive scan by key, and positions
// below C take the slots (e·G + g)·C + position. That is the host's "slots filled
// rank by rank, tokens in order". Expert choice sorts every (group, expert, member)
// by (group, expert, value descending, member) and gives slot (e·G + g)·C + r the
// r-th. Ties break as everywhere: the larger value, then the smaller index.
#include <thrust/binary_search.h>
#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/constant_iterator.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/scan.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "backend/ops.h"
#include "core/philox.h"

namespace sy::route {

#define SY_HD SY_HOST_DEVICE

// Thrust's temporary storage on CUDA, carved from the op's scratch (no cudaMalloc,
// no synchronisation). Freed memory is reused when it is the last block (Thrust's
// CUDA algorithms free in reverse order); algorithms run in stream order, so one
// call's temporaries are dead when the next call starts. Not thread-safe: the CPU
// backend, whose OpenMP sort allocates from several threads, uses malloc instead.
class BumpAllocator {
 public:
  using value_type = char;
  BumpAllocator(char* base, size_t size) : base_(base), size_(size) {}
  char* allocate(std::ptrdiff_t n) {
    const size_t at = (used_ + 255) & ~static_cast<size_t>(255);
    if (at + static_cast<size_t>(n) > size_)
      throw std::runtime_error("route scratch too small for the sort's temporary storage");
    used_ = at + static_cast<size_t>(n);
    return base_ + at;
  }
  void deallocate(char* p, size_t n) {
    if (p + n == base_ + used_) used_ = static_cast<size_t>(p - base_);
  }

 private:
  char* base_;
  size_t size_, used_ = 0;
};

// Rows, candidates and sums are counted in these units.
constexpr int64_t kChunk = 1024;  // elements per partial sum
constexpr int64_t kRowSums = 7;   // entropy, lse², experts-per-token histogram (5)

SY_HD inline int64_t chunks(int64_t n) { return (n + kChunk - 1) / kChunk; }

// The scratch of one call, as typed regions of one byte buffer.
struct Scratch {
  int64_t* index;    // [M] sort order
  int64_t* key;      // [M] scan keys, then sorted tokens
  int64_t* pos;      // [M] position within (group, expert)
  int32_t* cand_e;   // [M] candidate expert (−1: none)
  double* cand_gate; // [M] candidate gate
  double* sums;      // [sums_size] partial and per-(group, expert) sums
  int32_t* first;    // [N] each row's first choice (switch, gshard)
  double* row_vals;  // [N, 4] each row's entropy, lse², slots, lse
  double* fraction;  // [G, E] f: the fraction of a group's members whose first choice is e
  // noisy top-k (kept for the backward): scores h, noise scales σ, draws n [N, E];
  // per group: importance and load [G, E], their CV² gradients [G, E] each, CV² [G, 2]
  // and each (row, e)'s load term Φ((z − h_at)/σ) [N, E]
  double *h, *sigma, *noise, *importance, *load, *d_importance, *d_load, *cv2, *cdf;
  char* temp;        // Thrust's temporaries
  size_t temp_bytes;
};

inline int64_t candidates(const RouteSpec& s) {
  return s.rule == RouteRule::expert_choice ? s.rows() * s.experts : s.rows() * s.choices();
}
inline int64_t work_items(const RouteSpec& s) {
  const int64_t c = candidates(s);
  return c > s.slots() ? c : s.slots();
}
// (Ops::route_scratch_bytes sizes the whole: these regions, then Thrust's share.)
inline int64_t sums_size(const RouteSpec& s) {
  return 2 * s.groups * s.experts + kRowSums * chunks(s.rows()) + 2 * chunks(work_items(s)) + 8;
}
inline Scratch carve(char* base, size_t bytes, const RouteSpec& s) {
  const size_t M = static_cast<size_t>(work_items(s));
  size_t at = 0;
  auto take = [&](size_t n) {
    at = (at + 255) & ~static_cast<size_t>(255);
    char* p = base + at;
    at += n;
    return p;
  };
  Scratch c;
  c.index = reinterpret_cast<int64_t*>(take(M * 8));
  c.key = reinterpret_cast<int64_t*>(take(M * 8));
  c.pos = reinterpret_cast<int64_t*>(take(M * 8));
  c.cand_e = reinterpret_cast<int32_t*>(take(M * 4));
  c.cand_gate = reinterpret_cast<double*>(take(M * 8));
  c.sums = reinterpret_cast<double*>(take(static_cast<size_t>(sums_size(s)) * 8));
  c.first = reinterpret_cast<int32_t*>(take(static_cast<size_t>(s.rows()) * 4));
  c.row_vals = reinterpret_cast<double*>(take(static_cast<size_t>(s.rows()) * 4 * 8));
  c.fraction = reinterpret_cast<double*>(take(static_cast<size_t>(s.groups * s.experts) * 8));
  const size_t NE = s.rule == RouteRule::topk ? static_cast<size_t>(s.rows() * s.experts) : 0;
  const size_t GE = s.rule == RouteRule::topk ? static_cast<size_t>(s.groups * s.experts) : 0;
  c.h = reinterpret_cast<double*>(take(NE * 8));
  c.sigma = reinterpret_cast<double*>(take(NE * 8));
  c.noise = reinterpret_cast<double*>(take(NE * 8));
  c.importance = reinterpret_cast<double*>(take(GE * 8));
  c.load = reinterpret_cast<double*>(take(GE * 8));
  c.d_importance = reinterpret_cast<double*>(take(GE * 8));
  c.d_load = reinterpret_cast<double*>(take(GE * 8));
  c.cv2 = reinterpret_cast<double*>(take(GE ? static_cast<size_t>(2 * s.groups) * 8 : 0));
  c.cdf = reinterpret_cast<double*>(take(NE * 8));
  c.temp = take(0);
  if (at > bytes) throw std::runtime_error("route scratch smaller than its layout");
  c.temp_bytes = bytes - at;
  return c;
}

// Row of x of member s of group g.
SY_HD inline int64_t row_of(const RouteSpec& s, int64_t g, int64_t m) {
  return s.seq > 0 ? m * s.seq + g : g * s.members + m;
}

// The largest of row[0..E) other than `skip` (ties: the smaller index).
template <class T>
SY_HD inline int32_t argmax(const T* row, int64_t E, int64_t skip = -1) {
  int32_t best = -1;
  for (int64_t e = 0; e < E; ++e)
    if (e != skip && (best < 0 || row[e] > row[best])) best = static_cast<int32_t>(e);
  return best;
}

// ---- token choice -------------------------------------------------------------------
// Candidate i = (g·S + m)·k + j: member m of group g, its j-th choice.
template <class T>
struct TokenCandidate {
  const T* p;
  RouteSpec s;
  int32_t* cand_e;
  double* cand_gate;
  SY_HD void operator()(int64_t i) const {
    const int64_t k = s.choices(), j = i % k, m = (i / k) % s.members, g = i / k / s.members;
    const int64_t row = row_of(s, g, m);
    const T* r = p + row * s.experts;
    const int32_t e1 = argmax(r, s.experts);
    if (k == 1) {
      cand_e[i] = e1;
      cand_gate[i] = static_cast<double>(r[e1]);
      return;
    }
    // GShard: gates renormalised over the pair; the second kept when 2·g2 > u.
    const int32_t e2 = argmax(r, s.experts, e1);
    const double a = static_cast<double>(r[e1]), b = static_cast<double>(r[e2]);
    const double gate = (j == 0 ? a : b) / (a + b);
    bool keep = true;
    if (j == 1 && s.second_random) {
      const float u = philox::uniform(s.seed, s.stream, static_cast<uint64_t>(s.first_token + row));
      keep = 2.0 * gate > static_cast<double>(u);
    }
    cand_e[i] = keep ? (j == 0 ? e1 : e2) : -1;
    cand_gate[i] = gate;
  }
};

struct ByGroupExpertRankMember {  // over candidate indices; no choice sorts last
  const int32_t* cand_e;
  int64_t k, S, E;
  SY_HD bool operator()(int64_t a, int64_t b) const {
    const int64_t ga = a / k / S, gb = b / k / S;
    if (ga != gb) return ga < gb;
    const int64_t ea = cand_e[a] < 0 ? E : cand_e[a], eb = cand_e[b] < 0 ? E : cand_e[b];
    if (ea != eb) return ea < eb;
    if (a % k != b % k) return a % k < b % k;
    return a < b;  // same group and rank: the smaller member
  }
};

struct GroupExpertKey {  // sorted candidate n → its (group, expert) run
  const int64_t* index;
  const int32_t* cand_e;
  int64_t* key;
  int64_t k, S, E;
  SY_HD void operator()(int64_t n) const {
    const int64_t i = index[n], e = cand_e[i] < 0 ? E : cand_e[i];
    key[n] = (i / k / S) * (E + 1) + e;
  }
};

template <class T>
struct PlaceCandidate {  // sorted candidate n → its slot, when its position fits
  const int64_t* index;
  const int64_t* pos;
  const int32_t* cand_e;
  const double* cand_gate;
  RouteSpec s;
  int32_t* slot_row;
  T* slot_gate;
  SY_HD void operator()(int64_t n) const {
    const int64_t i = index[n], e = cand_e[i];
    if (e < 0 || pos[n] >= s.capacity) return;
    const int64_t k = s.choices(), m = (i / k) % s.members, g = i / k / s.members;
    const int64_t slot = (e * s.groups + g) * s.capacity + pos[n];
    slot_row[slot] = static_cast<int32_t>(row_of(s, g, m));
    slot_gate[slot] = static_cast<T>(cand_gate[i]);
  }
};

template <class T>
struct RowFirst {  // each row's first choice, once
  const T* p;
  int64_t E;
  int32_t* first;
  SY_HD void operator()(int64_t t) const { first[t] = argmax(p + t * E, E); }
};

// Per (group, expert): how many members have e as their first choice, the fraction
// f (1/S added once per such member, as the host builds it), and Σ p[:, e].
template <class T>
struct FirstChoiceCounts {
  const T* p;
  const int32_t* first;
  RouteSpec s;
  T* first_count;    // [G, E]
  double* fraction;  // [G, E]
  double* p_sum;     // [G, E]
  SY_HD void operator()(int64_t ge) const {
    const int64_t g = ge / s.experts, e = ge % s.experts;
    int64_t count = 0;
    double f = 0, sum = 0;
    for (int64_t m = 0; m < s.members; ++m) {
      const int64_t row = row_of(s, g, m);
      if (first[row] == e) ++count, f += 1.0 / static_cast<double>(s.members);
      sum += static_cast<double>(p[row * s.experts + e]);
    }
    first_count[ge] = static_cast<T>(count);
    fraction[ge] = f;
    p_sum[ge] = sum;
  }
};

// ---- noisy top-k --------------------------------------------------------------------
// Entry i = row·E + e: h = z + n·σ in training (σ = softplus(noise logit) + 0.01),
// h = z otherwise; in double, as the host.
template <class T>
struct NoisyScores {
  const T* z;
  const T* nz;  // null without noise
  RouteSpec s;
  double *h, *sigma, *noise;
  SY_HD void operator()(int64_t i) const {
    const double zi = static_cast<double>(z[i]);
    if (!s.noisy) {
      h[i] = zi;
      return;
    }
    const double x = static_cast<double>(nz[i]);
    const int64_t row = i / s.experts, e = i % s.experts;
    sigma[i] = (x > 30 ? x : log1p(exp(x))) + 0.01;
    noise[i] = philox::normal(s.seed, s.noise_stream,
                              static_cast<uint64_t>((s.first_token + row) * s.experts + e));
    h[i] = zi + noise[i] * sigma[i];
  }
};

// The r largest of row[0..E) (ties: the smaller index), largest first.
SY_HD inline void top_of(const double* row, int64_t E, int64_t r, int32_t* chosen) {
  for (int64_t q = 0; q < r; ++q) {
    int32_t best = -1;
    for (int64_t e = 0; e < E; ++e) {
      bool taken = false;
      for (int64_t p = 0; p < q; ++p) taken = taken || chosen[p] == e;
      if (!taken && (best < 0 || row[e] > row[best])) best = static_cast<int32_t>(e);
    }
    chosen[q] = best;
  }
}

struct TopkCandidate {  // candidate i = (g·S + m)·k + j: its j-th largest h, gate softmax over the k
  const double* h;
  RouteSpec s;
  int32_t* cand_e;
  double* cand_gate;
  SY_HD void operator()(int64_t i) const {
    const int64_t k = s.top_k, j = i % k, m = (i / k) % s.members, g = i / k / s.members;
    const double* row = h + row_of(s, g, m) * s.experts;
    int32_t chosen[kRouteMaxTopK + 1] = {};
    top_of(row, s.experts, k, chosen);
    double sum = 0;
    for (int64_t r = 0; r < k; ++r) sum += exp(row[chosen[r]] - row[chosen[0]]);
    cand_e[i] = chosen[j];
    cand_gate[i] = exp(row[chosen[j]] - row[chosen[0]]) / sum;
  }
};

SY_HD inline double normal_pdf(double u) { return exp(-0.5 * u * u) / sqrt(2.0 * 3.14159265358979323846); }
SY_HD inline double normal_cdf(double u) { return 0.5 * erfc(-u / sqrt(2.0)); }

// CV² = var / (mean² + 1e-10) of x[0..n) (population variance), its gradient into dx.
SY_HD inline double cv_squared(const double* x, int64_t n, double* dx) {
  const double nn = static_cast<double>(n);
  double m = 0, var = 0;
  for (int64_t e = 0; e < n; ++e) m += x[e] / nn;
  for (int64_t e = 0; e < n; ++e) var += (x[e] - m) * (x[e] - m) / nn;
  const double D = m * m + 1e-10;
  for (int64_t e = 0; e < n; ++e) dx[e] = 2.0 * (x[e] - m) / nn / D - var * 2.0 * m / nn / (D * D);
  return var / D;
}

// The load's threshold for (row, e): the k-th largest h other than e's own place:
// the (k+1)-th largest if e is among the top k, else the k-th. Its rank in chosen.
SY_HD inline int64_t load_threshold_rank(const int32_t* chosen, int64_t k, int64_t e) {
  bool in_top = false;
  for (int64_t r = 0; r < k; ++r) in_top = in_top || chosen[r] == e;
  return in_top ? k : k - 1;
}

// The host's `aux` of noisy_topk.cpp (training), in three passes that keep its
// order: per row, each (row, e)'s load term Φ((z − h_at)/σ); per (group, expert),
// importance (Σ gates of every member's top k) and load summed over members in
// order; per group, the CV² of both and their gradients.
template <class T>
struct RowLoad {
  const T* z;
  const Scratch w;
  RouteSpec s;
  SY_HD void operator()(int64_t t) const {
    const int64_t E = s.experts, k = s.top_k;
    int32_t chosen[kRouteMaxTopK + 1] = {};
    const double* h = w.h + t * E;
    top_of(h, E, k + 1, chosen);
    for (int64_t e = 0; e < E; ++e) {
      const int32_t at = chosen[load_threshold_rank(chosen, k, e)];
      w.cdf[t * E + e] = normal_cdf((static_cast<double>(z[t * E + e]) - h[at]) / w.sigma[t * E + e]);
    }
  }
};

struct GroupExpertAux {
  const Scratch w;
  RouteSpec s;
  bool load;
  SY_HD void operator()(int64_t ge) const {
    const int64_t E = s.experts, k = s.top_k, g = ge / E, e = ge % E;
    double importance = 0, l = 0;
    for (int64_t m = 0; m < s.members; ++m) {
      for (int64_t j = 0; j < k; ++j) {
        const int64_t i = (g * s.members + m) * k + j;
        if (w.cand_e[i] == e) importance += w.cand_gate[i];
      }
      if (load) l += w.cdf[row_of(s, g, m) * E + e];
    }
    w.importance[ge] = importance;
    w.load[ge] = l;
  }
};

struct GroupCv {
  const Scratch w;
  RouteSpec s;
  bool load;
  SY_HD void operator()(int64_t g) const {
    const int64_t E = s.experts;
    w.cv2[2 * g] = cv_squared(w.importance + g * E, E, w.d_importance + g * E);
    w.cv2[2 * g + 1] = load ? cv_squared(w.load + g * E, E, w.d_load + g * E) : 0.0;
    if (!load)
      for (int64_t e = 0; e < E; ++e) w.d_load[g * E + e] = 0;
  }
};

// ---- expert choice ------------------------------------------------------------------
// Entry i = (g·S + m)·E + e: member m of group g for expert e.
template <class T>
struct ByGroupExpertValueMember {
  const T* p;
  RouteSpec s;
  SY_HD T value(int64_t i) const {
    const int64_t E = s.experts;
    return p[row_of(s, i / E / s.members, (i / E) % s.members) * E + i % E];
  }
  SY_HD bool operator()(int64_t a, int64_t b) const {
    const int64_t E = s.experts, ga = a / E / s.members, gb = b / E / s.members;
    if (ga != gb) return ga < gb;
    if (a % E != b % E) return a % E < b % E;
    const T va = value(a), vb = value(b);
    if (va != vb) return va > vb;
    return a < b;  // same group, expert and value: the smaller member
  }
};

template <class T>
struct ExpertSlot {  // slot (e·G + g)·C + r ← the r-th of (g, e)'s sorted members
  const int64_t* index;
  const T* p;
  RouteSpec s;
  int32_t* slot_row;
  T* slot_gate;
  SY_HD void operator()(int64_t slot) const {
    const int64_t C = s.capacity, r = slot % C, g = (slot / C) % s.groups, e = slot / C / s.groups;
    const int64_t i = index[(g * s.experts + e) * s.members + r];
    const int64_t row = row_of(s, g, (i / s.experts) % s.members);
    slot_row[slot] = static_cast<int32_t>(row);
    slot_gate[slot] = p[row * s.experts + e];
  }
};

// ---- the token-major index ----------------------------------------------------------
struct SlotToken {  // key of slot k: its row, or N when empty (sorts last)
  const int32_t* slot_row;
  int64_t N;
  SY_HD int64_t operator()(int64_t k) const { return slot_row[k] < 0 ? N : slot_row[k]; }
};
struct ByTokenThenSlot {
  SlotToken token;
  SY_HD bool operator()(int64_t a, int64_t b) const {
    const int64_t ta = token(a), tb = token(b);
    return ta != tb ? ta < tb : a < b;
  }
};
struct SortedSlots {  // token_slots[n] and the sorted keys lower_bound searches
  const int64_t* index;
  SlotToken token;
  int32_t* token_slots;
  int64_t* sorted_key;
  SY_HD void operator()(int64_t n) const {
    token_slots[n] = static_cast<int32_t>(index[n]);
    sorted_key[n] = token(index[n]);
  }
};

// ---- statistics ---------------------------------------------------------------------
// Per row: lse (kept), entropy, lse², and how many slots the row has.
template <class T>
struct RowValues {
  const T* logits;
  const T* p;
  const int32_t* token_begin;
  int64_t E;
  T* lse;
  double* vals;  // [N, 4]
  SY_HD void operator()(int64_t t) const {
    const T* z = logits + t * E;
    double mx = static_cast<double>(z[0]), sum = 0, entropy = 0;
    for (int64_t e = 1; e < E; ++e) mx = static_cast<double>(z[e]) > mx ? static_cast<double>(z[e]) : mx;
    for (int64_t e = 0; e < E; ++e) sum += exp(static_cast<double>(z[e]) - mx);
    const double l = mx + log(sum);
    for (int64_t e = 0; e < E; ++e) {
      const double q = static_cast<double>(p[t * E + e]);
      if (q > 0) entropy -= q * log(q);
    }
    lse[t] = static_cast<T>(l);
    vals[4 * t] = entropy;
    vals[4 * t + 1] = l * l;
    vals[4 * t + 2] = static_cast<double>(token_begin[t + 1] - token_begin[t]);
    vals[4 * t + 3] = l;  // the backward's z-loss reads it in double, as the host
  }
};

// Per chunk of rows, in row order: Σ entropy, Σ lse², histogram of experts per token.
struct RowSums {
  const double* vals;
  int64_t rows;
  double* out;  // [chunks, kRowSums]
  SY_HD void operator()(int64_t c) const {
    double acc[kRowSums] = {0, 0, 0, 0, 0, 0, 0};
    for (int64_t t = c * kChunk; t < (c + 1) * kChunk && t < rows; ++t) {
      acc[0] += vals[4 * t];
      acc[1] += vals[4 * t + 1];
      const int64_t n = static_cast<int64_t>(vals[4 * t + 2]);
      acc[2 + (n < 4 ? n : 4)] += 1;
    }
    for (int64_t v = 0; v < kRowSums; ++v) out[c * kRowSums + v] = acc[v];
  }
};

template <class T>
struct SlotSums {  // per chunk of slots: Σ gates of filled slots
  const int32_t* slot_row;
  const T* slot_gate;
  int64_t slots;
  double* out;
  SY_HD void operator()(int64_t c) const {
    double acc = 0;
    for (int64_t k = c * kChunk; k < (c + 1) * kChunk && k < slots; ++k)
      if (slot_row[k] >= 0) acc += static_cast<double>(slot_gate[k]);
    out[c] = acc;
  }
};

struct DroppedSums {  // per chunk of sorted candidates: choices past capacity
  const int64_t* index;
  const int64_t* pos;
  const int32_t* cand_e;
  int64_t n, capacity;
  double* out;
  SY_HD void operator()(int64_t c) const {
    double acc = 0;
    for (int64_t i = c * kChunk; i < (c + 1) * kChunk && i < n; ++i)
      if (cand_e[index[i]] >= 0 && pos[i] >= capacity) acc += 1;
    out[c] = acc;
  }
};

// Expert e's column of the stats: filled slots, and (expert choice) Σ over groups
// of the C-th largest score, the threshold's sample.
template <class T>
struct ExpertSums {
  const int32_t* slot_row;
  const T* slot_gate;
  RouteSpec s;
  T* stats;
  SY_HD void operator()(int64_t e) const {
    const int64_t per_expert = s.groups * s.capacity;
    double kept = 0, theta = 0;
    for (int64_t k = e * per_expert; k < (e + 1) * per_expert; ++k) kept += slot_row[k] >= 0;
    if (s.rule == RouteRule::expert_choice)
      for (int64_t g = 0; g < s.groups; ++g)
        theta += static_cast<double>(slot_gate[(e * s.groups + g) * s.capacity + s.capacity - 1]);
    stats[e] = static_cast<T>(kept);
    stats[s.experts + e] = static_cast<T>(theta);
  }
};

template <class T>
struct FinalSums {  // one thread: the chunks' partials in order → the stats tail
  const double* row_sums;
  const double* slot_sums;
  const double* dropped_sums;
  const double* fraction;
  const double* p_sum;
  const double* cv2;  // noisy top-k in training: [G, 2]
  RouteSpec s;
  int64_t slot_chunks, cand_chunks;
  T* stats;
  SY_HD void operator()(int64_t) const {
    T* tail = stats + 2 * s.experts;
    double rows[kRowSums] = {0, 0, 0, 0, 0, 0, 0};
    for (int64_t c = 0; c < chunks(s.rows()); ++c)
      for (int64_t v = 0; v < kRowSums; ++v) rows[v] += row_sums[c * kRowSums + v];
    double gates = 0, dropped = 0, balance = 0, importance = 0, load = 0;
    for (int64_t c = 0; c < slot_chunks; ++c) gates += slot_sums[c];
    for (int64_t c = 0; c < cand_chunks; ++c) dropped += dropped_sums[c];
    if (s.rule == RouteRule::topk && s.noisy)  // Σ over groups of the weighted CV²s
      for (int64_t g = 0; g < s.groups; ++g) {
        importance = cv2[2 * g], load = cv2[2 * g + 1];
        balance += s.w_importance * importance + s.w_load * load;
      }
    if (s.rule == RouteRule::top1 || s.rule == RouteRule::top2)  // Σ over groups of E · Σ_e f_e · P_e
      for (int64_t g = 0; g < s.groups; ++g) {
        double group = 0;
        for (int64_t e = 0; e < s.experts; ++e)
          group += static_cast<double>(s.experts) * fraction[g * s.experts + e] *
                   (p_sum[g * s.experts + e] / static_cast<double>(s.members));
        balance += group;
      }
    tail[kStatDropped] = static_cast<T>(dropped);
    tail[kStatBalance] = static_cast<T>(balance);
    tail[kStatImportance] = static_cast<T>(importance);
    tail[kStatLoad] = static_cast<T>(load);
    tail[kStatGates] = static_cast<T>(gates);
    tail[kStatEntropy] = static_cast<T>(rows[0]);
    tail[kStatLse2] = static_cast<T>(rows[1]);
    for (int v = 0; v < 5; ++v) tail[kStatHistogram + v] = static_cast<T>(rows[2 + v]);
  }

  // Local names of RouteStat (ops.h) for the tail.
  static constexpr int kStatDropped = static_cast<int>(RouteStat::dropped);
  static constexpr int kStatBalance = static_cast<int>(RouteStat::aux_sum);
  static constexpr int kStatImportance = static_cast<int>(RouteStat::importance_cv2);
  static constexpr int kStatLoad = static_cast<int>(RouteStat::load_cv2);
  static constexpr int kStatGates = static_cast<int>(RouteStat::gate_sum);
  static constexpr int kStatEntropy = static_cast<int>(RouteStat::entropy_sum);
  static constexpr int kStatLse2 = static_cast<int>(RouteStat::lse2_sum);
  static constexpr int kStatHistogram = static_cast<int>(RouteStat::histogram);
};

// ---- the router input's jitter -------------------------------------------------------
template <class T>
struct Jitter {  // element i of [N, width]: the host's multiplier, in double
  const T* in;
  JitterSpec s;
  int64_t width;
  T* out;
  SY_HD void operator()(int64_t i) const {
    const uint64_t index = static_cast<uint64_t>((s.first_token + i / width) * width + i % width);
    const double m = 1.0 - s.eps + 2.0 * s.eps * philox::uniform_double(s.seed, s.stream, index);
    out[i] = static_cast<T>(static_cast<double>(in[i]) * m);
  }
};

template <class T, class Policy>
void jitter(Policy policy, const JitterSpec& s, const T* in, int64_t n, int64_t width, T* out) {
  const thrust::counting_iterator<int64_t> zero(0);
  thrust::for_each(policy, zero, zero + n, Jitter<T>{in, s, width, out});
}

// ---- forward ------------------------------------------------------------------------
template <class T, class Policy>
void plan(Policy policy, const RouteSpec& s, const T* logits, const T* p, const T* noise_logits, int32_t* slot_row,
          T* slot_gate, int32_t* token_begin, int32_t* token_slots, T* first_count, T* lse, T* stats,
          const Scratch& w) {
  using thrust::counting_iterator;
  const int64_t N = s.rows(), E = s.experts, slots = s.slots();
  const counting_iterator<int64_t> zero(0);
  thrust::fill(policy, slot_row, slot_row + slots, -1);
  thrust::fill(policy, slot_gate, slot_gate + slots, T(0));
  double* p_sum = w.sums;                        // [G, E]
  double* row_sums = p_sum + s.groups * E;       // [chunks(N), kRowSums]
  double* slot_sums = row_sums + kRowSums * chunks(N);
  double* dropped_sums = slot_sums + chunks(work_items(s));
  const int64_t n = candidates(s);
  int64_t cand_chunks = 0;
  if (s.rule == RouteRule::expert_choice) {
    thrust::sequence(policy, w.index, w.index + n);
    thrust::sort(policy, w.index, w.index + n, ByGroupExpertValueMember<T>{p, s});
    thrust::for_each(policy, zero, zero + slots, ExpertSlot<T>{w.index, p, s, slot_row, slot_gate});
  } else {
    const int64_t k = s.choices();
    if (s.rule == RouteRule::topk) {
      thrust::for_each(policy, zero, zero + N * E, NoisyScores<T>{logits, noise_logits, s, w.h, w.sigma, w.noise});
      thrust::for_each(policy, zero, zero + n, TopkCandidate{w.h, s, w.cand_e, w.cand_gate});
    } else {
      thrust::for_each(policy, zero, zero + n, TokenCandidate<T>{p, s, w.cand_e, w.cand_gate});
    }
    thrust::sequence(policy, w.index, w.index + n);
    thrust::sort(policy, w.index, w.index + n, ByGroupExpertRankMember{w.cand_e, k, s.members, E});
    thrust::for_each(policy, zero, zero + n, GroupExpertKey{w.index, w.cand_e, w.key, k, s.members, E});
    thrust::exclusive_scan_by_key(policy, w.key, w.key + n, thrust::constant_iterator<int64_t>(1), w.pos);
    thrust::for_each(policy, zero, zero + n,
                     PlaceCandidate<T>{w.index, w.pos, w.cand_e, w.cand_gate, s, slot_row, slot_gate});
    if (s.rule == RouteRule::topk) {
      if (s.noisy) {
        const bool load = s.top_k < E;
        if (load) thrust::for_each(policy, zero, zero + N, RowLoad<T>{logits, w, s});
        thrust::for_each(policy, zero, zero + s.groups * E, GroupExpertAux{w, s, load});
        thrust::for_each(policy, zero, zero + s.groups, GroupCv{w, s, load});
      }
    } else {
      thrust::for_each(policy, zero, zero + N, RowFirst<T>{p, E, w.first});
      thrust::for_each(policy, zero, zero + s.groups * E,
                       FirstChoiceCounts<T>{p, w.first, s, first_count, w.fraction, p_sum});
    }
    cand_chunks = chunks(n);
    thrust::for_each(policy, zero, zero + cand_chunks,
                     DroppedSums{w.index, w.pos, w.cand_e, n, s.capacity, dropped_sums});
  }
  // Each row's slots in slot order (token-major), and where each row's run begins.
  const SlotToken token{slot_row, N};
  thrust::sequence(policy, w.index, w.index + slots);
  thrust::sort(policy, w.index, w.index + slots, ByTokenThenSlot{token});
  thrust::for_each(policy, zero, zero + slots, SortedSlots{w.index, token, token_slots, w.key});
  thrust::lower_bound(policy, w.key, w.key + slots, zero, zero + (N + 1), token_begin);
  // Statistics, in fixed chunks.
  thrust::for_each(policy, zero, zero + N, RowValues<T>{logits, p, token_begin, E, lse, w.row_vals});
  thrust::for_each(policy, zero, zero + chunks(N), RowSums{w.row_vals, N, row_sums});
  thrust::for_each(policy, zero, zero + chunks(slots), SlotSums<T>{slot_row, slot_gate, slots, slot_sums});
  thrust::for_each(policy, zero, zero + E, ExpertSums<T>{slot_row, slot_gate, s, stats});
  thrust::for_each(policy, zero, zero + 1,
                   FinalSums<T>{row_sums, slot_sums, dropped_sums, w.fraction, p_sum, w.cv2, s, chunks(slots),
                                cand_chunks, stats});
}

// ---- backward -----------------------------------------------------------------------
// Row t: ∂L/∂p from its slots' gate gradients (and the balance loss), through the
// softmax, plus the z-loss: dlogits[t] = p ⊙ (dp − ⟨p, dp⟩) + z_scale · 2 · lse · p / N.
// dp is summed in double, each entry over the row's slots in slot order.
template <class T>
struct RowBackward {
  const T* dgate;
  const int32_t* token_begin;
  const int32_t* token_slots;
  const T* p;
  const double* fraction;  // [G, E]
  const double* row_vals;  // [N, 4]: lse at 3
  RouteSpec s;
  double balance_scale, z_scale;
  T* dlogits;
  SY_HD double dp(int64_t t, int64_t e, const T* r, int32_t e1, int32_t e2) const {
    double d = 0;
    const int64_t per_expert = s.groups * s.capacity;
    for (int32_t j = token_begin[t]; j < token_begin[t + 1]; ++j) {
      const int64_t k = token_slots[j], self = k / per_expert;
      const double g = static_cast<double>(dgate[k]);
      if (s.rule != RouteRule::top2) {  // gate = p[t, e]
        if (self == e) d += g;
        continue;
      }
      // gate = p_self / (p1 + p2): ∂/∂p_self = p_other/s², ∂/∂p_other = −p_self/s².
      const int64_t other = self == e1 ? e2 : e1;
      const double ps = static_cast<double>(r[self]), po = static_cast<double>(r[other]);
      const double sum = static_cast<double>(r[e1]) + static_cast<double>(r[e2]);
      if (self == e) d += g * po / (sum * sum);
      if (other == e) d -= g * ps / (sum * sum);
    }
    if (balance_scale != 0) {  // E · Σ f_e P_e with f fixed: ∂/∂p[t, e] = E · f_e / S
      const int64_t g = s.seq > 0 ? t % s.seq : t / s.members;
      d += balance_scale * static_cast<double>(s.experts) * fraction[g * s.experts + e] /
           static_cast<double>(s.members);
    }
    return d;
  }
  SY_HD void operator()(int64_t t) const {
    const int64_t E = s.experts;
    const T* r = p + t * E;
    int32_t e1 = -1, e2 = -1;
    if (s.rule == RouteRule::top2) e1 = argmax(r, E), e2 = argmax(r, E, e1);
    double dot = 0;
    for (int64_t e = 0; e < E; ++e) dot += static_cast<double>(r[e]) * dp(t, e, r, e1, e2);
    const double lse = row_vals[4 * t + 3], N = static_cast<double>(s.rows());
    for (int64_t e = 0; e < E; ++e) {
      const double q = static_cast<double>(r[e]);
      const double v = q * (dp(t, e, r, e1, e2) - dot);
      dlogits[t * E + e] = static_cast<T>(v + z_scale * 2.0 * lse * q / N);  // the host's association
    }
  }
};

// Noisy top-k, row t: ∂L/∂gate of its kept choices and the importance loss through
// the softmax over its top k into ∂h (two passes, as the host), the load loss into
// ∂z, ∂h at the thresholds and ∂σ; then dlogits = ∂h + ∂z (+ the z-loss) and
// dnoise_logits = (∂h·n + ∂σ)·sigmoid(noise logit). In the host's order. ∂h is
// non-zero only at the row's k + 1 largest scores (the gates' k, and the load's
// thresholds, the k-th and (k+1)-th), so it is kept by rank: a small frame.
template <class T>
struct TopkRowBackward {
  const T* dgate;
  const int32_t* token_begin;
  const int32_t* token_slots;
  const T* z;
  const T* p;
  const T* nz;
  const double* row_vals;  // [N, 4]: lse at 3
  const Scratch w;
  RouteSpec s;
  double aux_scale, z_scale;
  T* dlogits;
  T* dnoise;
  SY_HD void softmax_k(const double* gate, const double* dtk, double* dh) const {
    double dot = 0;
    for (int64_t j = 0; j < s.top_k; ++j) dot += gate[j] * dtk[j];
    for (int64_t j = 0; j < s.top_k; ++j) dh[j] += gate[j] * (dtk[j] - dot);
  }
  // The load loss's coefficient c for (t, e), with its u and threshold's rank.
  SY_HD double load_c(int64_t t, int64_t e, int64_t g, const int32_t* chosen, double& u, int64_t& at_rank) const {
    const int64_t i = t * s.experts + e;
    at_rank = load_threshold_rank(chosen, s.top_k, e);
    u = (static_cast<double>(z[i]) - w.h[t * s.experts + chosen[at_rank]]) / w.sigma[i];
    return aux_scale * s.w_load * w.d_load[g * s.experts + e] * normal_pdf(u);
  }
  SY_HD void operator()(int64_t t) const {
    const int64_t E = s.experts, k = s.top_k, per_expert = s.groups * s.capacity;
    const int64_t g = s.seq > 0 ? t % s.seq : t / s.members, m = s.seq > 0 ? t / s.seq : t % s.members;
    const int64_t first = (g * s.members + m) * k;  // the row's candidates
    double dh[kRouteMaxTopK + 1], gate[kRouteMaxTopK], dtk[kRouteMaxTopK];  // by rank
    int32_t chosen[kRouteMaxTopK + 1] = {};
    for (int64_t r = 0; r <= k; ++r) dh[r] = 0;
    for (int64_t j = 0; j < k; ++j) chosen[j] = w.cand_e[first + j], gate[j] = w.cand_gate[first + j], dtk[j] = 0;
    for (int32_t q = token_begin[t]; q < token_begin[t + 1]; ++q) {  // kept choices
      const int64_t slot = token_slots[q], e = slot / per_expert;
      for (int64_t j = 0; j < k; ++j)
        if (chosen[j] == e) dtk[j] += static_cast<double>(dgate[slot]);
    }
    softmax_k(gate, dtk, dh);
    const bool load = s.noisy && aux_scale != 0 && k < E;
    if (s.noisy && aux_scale != 0) {
      for (int64_t j = 0; j < k; ++j) dtk[j] = aux_scale * s.w_importance * w.d_importance[g * E + chosen[j]];
      softmax_k(gate, dtk, dh);
    }
    if (load) {  // ∂h at each threshold, in e order (the host's)
      top_of(w.h + t * E, E, k + 1, chosen);
      for (int64_t e = 0; e < E; ++e) {
        double u;
        int64_t at;
        const double c = load_c(t, e, g, chosen, u, at);
        dh[at] -= c / w.sigma[t * E + e];
      }
    }
    const double lse = row_vals[4 * t + 3], N = static_cast<double>(s.rows());
    for (int64_t e = 0; e < E; ++e) {
      const int64_t i = t * E + e;
      double dhe = 0, dz = 0, dsigma = 0;
      for (int64_t r = 0; r <= k; ++r)
        if (chosen[r] == e && (r < k || load)) dhe = dh[r];
      if (load) {
        double u;
        int64_t at;
        const double c = load_c(t, e, g, chosen, u, at);
        dz = c / w.sigma[i];
        dsigma = -(c * u / w.sigma[i]);
      }
      const double v = dhe + dz;
      dlogits[i] = static_cast<T>(v + z_scale * 2.0 * lse * static_cast<double>(p[i]) / N);
      if (s.noisy) {
        const double x = static_cast<double>(nz[i]);
        dnoise[i] = static_cast<T>((dhe * w.noise[i] + dsigma) * (1.0 / (1.0 + exp(-x))));
      }
    }
  }
};

template <class T, class Policy>
void backward(Policy policy, const RouteSpec& s, const T* dgate, const int32_t* token_begin,
              const int32_t* token_slots, const T* logits, const T* p, const T* noise_logits, const Scratch& w,
              double aux_scale, double z_scale, T* dlogits, T* dnoise_logits) {
  const thrust::counting_iterator<int64_t> zero(0);
  if (s.rule == RouteRule::topk) {
    thrust::for_each(policy, zero, zero + s.rows(),
                     TopkRowBackward<T>{dgate, token_begin, token_slots, logits, p, noise_logits, w.row_vals, w, s,
                                        aux_scale, z_scale, dlogits, dnoise_logits});
    return;
  }
  thrust::for_each(policy, zero, zero + s.rows(),
                   RowBackward<T>{dgate, token_begin, token_slots, p, w.fraction, w.row_vals, s, aux_scale, z_scale,
                                  dlogits});
}

#undef SY_HD

}  // namespace sy::route
