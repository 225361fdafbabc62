#include "moe/routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/errors.h"

namespace sy {
namespace {

// Index of the largest of row[0..n) other than `skip` (ties: smaller index).
template <class T>
int32_t argmax_row(const T* row, int64_t n, int64_t skip = -1) {
  int32_t best = -1;
  for (int64_t e = 0; e < n; ++e)
    if (e != skip && (best < 0 || row[e] > row[best])) best = static_cast<int32_t>(e);
  return best;
}

// Per-expert slot lists → one choice list in dispatch order.
GroupRoute flatten(std::vector<std::vector<Choice>>& per_expert) {
  GroupRoute r;
  for (auto& list : per_expert) r.choices.insert(r.choices.end(), list.begin(), list.end());
  return r;
}

// Switch / GShard balance loss E · Σ f_e · P_e, with f from argmax choices.
template <class T>
void balance_loss(const T* p, int64_t S, int64_t E, GroupRoute& r) {
  r.first_fraction.assign(static_cast<size_t>(E), 0.0);
  for (int64_t t = 0; t < S; ++t) r.first_fraction[argmax_row(p + t * E, E)] += 1.0 / static_cast<double>(S);
  r.aux = balance_value(p, S, E, r.first_fraction);
}

// Tokens of column e ordered by value descending, then token index ascending.
template <class T>
std::vector<int32_t> top_tokens(const T* a, int64_t S, int64_t E, int64_t e, int64_t C) {
  std::vector<int32_t> idx(static_cast<size_t>(S));
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + C, idx.end(), [&](int32_t x, int32_t y) {
    const T vx = a[x * E + e], vy = a[y * E + e];
    return vx > vy || (vx == vy && x < y);
  });
  idx.resize(static_cast<size_t>(C));
  return idx;
}

inline double logistic(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// The m in [lo, hi] with Σ_i σ((v_i − m)/λ) = target; the sum falls as m grows.
// `eval(m, &slope)` returns the sum and its derivative in m. Newton from `start`
// (the previous solve's multiplier: the alternating solver moves it little), with
// bisection whenever a step would leave the bracket; the bracket shrinks every step,
// so this ends at the bisection answer's precision in a few evaluations instead of
// the 60 a plain bisection needs.
template <class F>
double solve_multiplier(F eval, double target, double lo, double hi, double start) {
  double m = std::clamp(start, lo, hi);
  for (int it = 0; it < 100; ++it) {
    double slope = 0;
    const double f = eval(m, &slope) - target;
    if (std::abs(f) <= 1e-9 * std::max(1.0, target)) return m;
    (f > 0 ? lo : hi) = m;  // sum too big → m must grow
    if (hi - lo <= 1e-15 * std::max(1.0, std::abs(m))) return m;
    const double newton = slope < 0 ? m - f / slope : lo - 1.0;
    m = (newton > lo && newton < hi) ? newton : 0.5 * (lo + hi);
  }
  return m;
}

}  // namespace

template <class T>
double balance_value(const T* p, int64_t S, int64_t E, const std::vector<double>& f) {
  double loss = 0;
  for (int64_t e = 0; e < E; ++e) {
    double P = 0;
    for (int64_t s = 0; s < S; ++s) P += static_cast<double>(p[s * E + e]);
    loss += static_cast<double>(E) * f[e] * (P / static_cast<double>(S));
  }
  return loss;
}

int64_t token_choice_capacity(double factor, int64_t k, int64_t S, int64_t E) {
  if (factor <= 0) return S;
  const int64_t c = static_cast<int64_t>(std::ceil(factor * static_cast<double>(k * S) / E));
  return std::clamp<int64_t>(c, 1, S);
}

int64_t expert_choice_capacity(double c, int64_t S, int64_t E) {
  const int64_t v = static_cast<int64_t>(std::ceil(c * static_cast<double>(S) / E));
  return std::clamp<int64_t>(v, 1, S);
}

template <class T>
GroupRoute route_switch_top1(const T* p, int64_t S, int64_t E, int64_t capacity) {
  std::vector<std::vector<Choice>> slots(static_cast<size_t>(E));
  int64_t dropped = 0;
  for (int64_t t = 0; t < S; ++t) {
    const int32_t e = argmax_row(p + t * E, E);
    if (static_cast<int64_t>(slots[e].size()) < capacity)
      slots[e].push_back({static_cast<int32_t>(t), e, p[t * E + e]});
    else
      ++dropped;
  }
  GroupRoute r = flatten(slots);
  r.dropped = dropped;
  balance_loss(p, S, E, r);
  return r;
}

template <class T>
GroupRoute route_gshard_top2(const T* p, int64_t S, int64_t E, int64_t capacity,
                             const float* second_uniform, std::vector<int32_t>* pair) {
  std::vector<std::vector<Choice>> slots(static_cast<size_t>(E));
  std::vector<int32_t> e1(S), e2(S);
  std::vector<double> g1(S), g2(S);
  for (int64_t t = 0; t < S; ++t) {
    e1[t] = argmax_row(p + t * E, E);
    e2[t] = argmax_row(p + t * E, E, e1[t]);
    const double a = p[t * E + e1[t]], b = p[t * E + e2[t]];
    g1[t] = a / (a + b);
    g2[t] = b / (a + b);
  }
  if (pair) {
    pair->resize(static_cast<size_t>(2 * S));
    for (int64_t t = 0; t < S; ++t) (*pair)[2 * t] = e1[t], (*pair)[2 * t + 1] = e2[t];
  }
  int64_t dropped = 0;
  auto place = [&](int64_t t, int32_t e, double g) {
    if (static_cast<int64_t>(slots[e].size()) < capacity)
      slots[e].push_back({static_cast<int32_t>(t), e, g});
    else
      ++dropped;
  };
  for (int64_t t = 0; t < S; ++t) place(t, e1[t], g1[t]);
  for (int64_t t = 0; t < S; ++t)
    if (!second_uniform || 2.0 * g2[t] > static_cast<double>(second_uniform[t])) place(t, e2[t], g2[t]);
  GroupRoute r = flatten(slots);
  r.dropped = dropped;
  balance_loss(p, S, E, r);
  return r;
}

template <class T>
GroupRoute route_expert_choice(const T* p, int64_t S, int64_t E, int64_t capacity) {
  GroupRoute r;
  for (int64_t e = 0; e < E; ++e)
    for (int32_t t : top_tokens(p, S, E, e, capacity))
      r.choices.push_back({t, static_cast<int32_t>(e), p[t * E + e]});
  return r;
}

template <class T>
std::vector<double> entropic_assignment(const T* p, int64_t S, int64_t E, int64_t C, int64_t b,
                                       double lambda, int max_iterations) {
  // A[t,e] = σ((P[t,e] − α_e − β_t)/λ): the maximiser of ⟨P,A⟩ + λ·H(A) over the box
  // 0 ≤ A ≤ 1 (H the binary entropy), for multipliers α (rows sum to C) and β ≥ 0
  // (columns sum to at most b). Each multiplier is exact given the others.
  std::vector<double> alpha(static_cast<size_t>(E), 0.0), beta(static_cast<size_t>(S), 0.0);
  const double pad = 40.0 * lambda;
  auto a_at = [&](int64_t t, int64_t e, double al, double be) {
    return logistic((p[t * E + e] - al - be) / lambda);
  };
  for (int it = 0; it < max_iterations; ++it) {
    for (int64_t e = 0; e < E; ++e) {
      double lo = 1e30, hi = -1e30;
      for (int64_t t = 0; t < S; ++t) {
        lo = std::min(lo, p[t * E + e] - beta[t] - pad);
        hi = std::max(hi, p[t * E + e] - beta[t] + pad);
      }
      alpha[e] = solve_multiplier(
          [&](double m, double* slope) {
            double s = 0, ds = 0;
            for (int64_t t = 0; t < S; ++t) {
              const double a = a_at(t, e, m, beta[t]);
              s += a;
              ds -= a * (1 - a) / lambda;
            }
            *slope = ds;
            return s;
          },
          static_cast<double>(C), lo, hi, alpha[e]);
    }
    double worst = 0;
    for (int64_t t = 0; t < S; ++t) {
      double col = 0;
      for (int64_t e = 0; e < E; ++e) col += a_at(t, e, alpha[e], 0.0);
      if (col <= static_cast<double>(b)) {
        beta[t] = 0;
        continue;
      }
      double hi = 0;
      for (int64_t e = 0; e < E; ++e) hi = std::max(hi, p[t * E + e] - alpha[e] + pad);
      beta[t] = solve_multiplier(
          [&](double m, double* slope) {
            double s = 0, ds = 0;
            for (int64_t e = 0; e < E; ++e) {
              const double a = a_at(t, e, alpha[e], m);
              s += a;
              ds -= a * (1 - a) / lambda;
            }
            *slope = ds;
            return s;
          },
          static_cast<double>(b), 0.0, hi, beta[t]);
    }
    // Converged when the rows (which the column step disturbed) are back at C.
    for (int64_t e = 0; e < E; ++e) {
      double row = 0;
      for (int64_t t = 0; t < S; ++t) row += a_at(t, e, alpha[e], beta[t]);
      worst = std::max(worst, std::abs(row - static_cast<double>(C)));
    }
    if (worst < 1e-3) break;
  }
  std::vector<double> A(static_cast<size_t>(S * E));
  for (int64_t t = 0; t < S; ++t)
    for (int64_t e = 0; e < E; ++e) A[t * E + e] = a_at(t, e, alpha[e], beta[t]);
  return A;
}

// The pick of capped expert choice: every expert exactly C tokens, every token at
// most b experts, preferring large A — whenever such an assignment exists at all
// (C ≤ S, E·C ≤ min(b, E)·S: the bipartite graph is complete). First a greedy pass
// over every (token, expert) pair in descending A under both caps; then, for each
// expert still short, an augmenting path (breadth first over experts, tokens in
// descending A): the expert takes a token from another expert that can take a token
// with room instead. Each path adds one slot and keeps every cap. Returns, per
// expert, its tokens.
static std::vector<std::vector<int32_t>> fill_capped(const std::vector<double>& A, int64_t S, int64_t E,
                                                     int64_t C, int64_t b) {
  std::vector<int64_t> order(static_cast<size_t>(S * E));
  std::iota(order.begin(), order.end(), 0);
  // Descending A; ties: token, then expert, ascending (index = t·E + e).
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
    return A[x] != A[y] ? A[x] > A[y] : x < y;
  });
  std::vector<char> taken(static_cast<size_t>(S * E), 0);
  std::vector<int64_t> per_token(static_cast<size_t>(S), 0), per_expert(static_cast<size_t>(E), 0);
  for (int64_t i : order) {
    const int64_t t = i / E, e = i % E;
    if (per_expert[e] < C && per_token[t] < b) {
      taken[i] = 1;
      ++per_expert[e];
      ++per_token[t];
    }
  }
  // Each expert's candidate tokens in descending A, for the paths.
  std::vector<std::vector<int32_t>> by_a(static_cast<size_t>(E));
  for (int64_t i : order) by_a[i % E].push_back(static_cast<int32_t>(i / E));
  for (int64_t start = 0; start < E; ++start)
    while (per_expert[start] < C) {
      // BFS over experts; parent[e] = (expert it came from, token it takes from e).
      std::vector<int64_t> from(static_cast<size_t>(E), -2), via(static_cast<size_t>(E), -1);
      std::vector<int64_t> queue = {start};
      from[start] = -1;
      int64_t end_expert = -1, end_token = -1;
      for (size_t q = 0; q < queue.size() && end_expert < 0; ++q) {
        const int64_t e = queue[q];
        for (int32_t t : by_a[e]) {
          if (taken[t * E + e]) continue;
          if (per_token[t] < b) {  // room: the path ends here
            end_expert = e;
            end_token = t;
            break;
          }
          for (int64_t o = 0; o < E; ++o)  // t is full: one of its experts could move on
            if (taken[t * E + o] && from[o] == -2) {
              from[o] = e;
              via[o] = t;
              queue.push_back(o);
            }
        }
      }
      if (end_expert < 0) break;  // no path: no full assignment exists
      // Walk back: end_expert takes end_token; each expert on the path takes the
      // token of the next one, which gives it up.
      taken[end_token * E + end_expert] = 1;
      ++per_token[end_token];
      for (int64_t e = end_expert; from[e] >= 0; e = from[e]) {
        const int64_t t = via[e];
        taken[t * E + e] = 0;
        taken[t * E + from[e]] = 1;
      }
      ++per_expert[start];
    }
  std::vector<std::vector<int32_t>> picks(static_cast<size_t>(E));
  for (int64_t i : order)
    if (taken[i]) picks[i % E].push_back(static_cast<int32_t>(i / E));  // descending A
  return picks;
}

template <class T>
GroupRoute route_expert_choice_capped(const T* p, int64_t S, int64_t E, int64_t C, int64_t b) {
  const std::vector<double> A = entropic_assignment(p, S, E, C, b);
  const std::vector<std::vector<int32_t>> picks = fill_capped(A, S, E, C, b);
  GroupRoute r;
  for (int64_t e = 0; e < E; ++e) {  // expert-major, each expert's tokens by A
    for (int32_t t : picks[e]) r.choices.push_back({t, static_cast<int32_t>(e), p[t * E + e]});
    r.empty_slots += C - static_cast<int64_t>(picks[e].size());
  }
  return r;
}

template <class T>
GroupRoute route_noisy_topk(const T* h, int64_t S, int64_t E, int64_t k, int64_t capacity,
                            std::vector<int32_t>* topk_expert, std::vector<double>* topk_gate) {
  std::vector<std::vector<Choice>> slots(static_cast<size_t>(E));
  std::vector<int32_t> chosen(static_cast<size_t>(S * k));
  std::vector<double> gates(static_cast<size_t>(S * k));
  std::vector<int32_t> idx(static_cast<size_t>(E));
  for (int64_t t = 0; t < S; ++t) {
    const T* row = h + t * E;
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t x, int32_t y) {
      return row[x] > row[y] || (row[x] == row[y] && x < y);
    });
    double z = 0;
    for (int64_t j = 0; j < k; ++j) z += std::exp(static_cast<double>(row[idx[j]] - row[idx[0]]));
    for (int64_t j = 0; j < k; ++j) {
      chosen[t * k + j] = idx[j];
      gates[t * k + j] = std::exp(static_cast<double>(row[idx[j]] - row[idx[0]])) / z;
    }
  }
  int64_t dropped = 0;
  for (int64_t j = 0; j < k; ++j)  // rank by rank, tokens in order (as GShard's passes)
    for (int64_t t = 0; t < S; ++t) {
      const int32_t e = chosen[t * k + j];
      if (static_cast<int64_t>(slots[e].size()) < capacity)
        slots[e].push_back({static_cast<int32_t>(t), e, gates[t * k + j]});
      else
        ++dropped;
    }
  GroupRoute r = flatten(slots);
  r.dropped = dropped;
  if (topk_expert) *topk_expert = chosen;
  if (topk_gate) *topk_gate = gates;
  return r;
}

#define SY_INSTANTIATE(T)                                                                      \
  template double balance_value<T>(const T*, int64_t, int64_t, const std::vector<double>&);    \
  template GroupRoute route_switch_top1<T>(const T*, int64_t, int64_t, int64_t);               \
  template GroupRoute route_gshard_top2<T>(const T*, int64_t, int64_t, int64_t, const float*,          \
                                           std::vector<int32_t>*);                                       \
  template GroupRoute route_expert_choice<T>(const T*, int64_t, int64_t, int64_t);             \
  template GroupRoute route_expert_choice_capped<T>(const T*, int64_t, int64_t, int64_t, int64_t); \
  template std::vector<double> entropic_assignment<T>(const T*, int64_t, int64_t, int64_t, int64_t, \
                                                      double, int);                            \
  template GroupRoute route_noisy_topk<T>(const T*, int64_t, int64_t, int64_t, int64_t,   \
                                          std::vector<int32_t>*, std::vector<double>*);
SY_INSTANTIATE(float)
SY_INSTANTIATE(double)

double cv_squared(const std::vector<double>& x, std::vector<double>* grad) {
  const double n = static_cast<double>(x.size());
  double m = 0;
  for (double v : x) m += v / n;
  double var = 0;
  for (double v : x) var += (v - m) * (v - m) / n;
  const double D = m * m + 1e-10;
  if (grad) {
    grad->resize(x.size());
    for (size_t e = 0; e < x.size(); ++e)
      (*grad)[e] = 2.0 * (x[e] - m) / n / D - var * 2.0 * m / n / (D * D);
  }
  return var / D;
}

void experts_per_token_histogram(const GroupRoute& r, int64_t S, int64_t hist[5]) {
  std::vector<int64_t> n(static_cast<size_t>(S), 0);
  for (const Choice& c : r.choices) ++n[c.token];
  for (int64_t t = 0; t < S; ++t) ++hist[std::min<int64_t>(n[t], 4)];
}

}  // namespace sy
