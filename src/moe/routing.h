#pragma once
// The routing rules of docs/routing.md for one group, as plain functions over the
// group's fp32 router probabilities p [S, E] (row t = token t of the group). They
// are the CPU reference of every backend's routers. Selections break ties by the
// larger value first, then the smaller index.
#include <cstdint>
#include <vector>

namespace sy {

// One kept (token, expert) pair of a group, with its combine weight.
struct Choice {
  int32_t token;   // index within the group
  int32_t expert;
  double gate;  // (fp32 or fp64 values, as the router's dtype)
};

// A group's routing. `choices` are in dispatch order: by expert, then by slot
// (the order in which the expert's slots were filled).
struct GroupRoute {
  std::vector<Choice> choices;
  int64_t dropped = 0;        // token choice: choices lost to capacity
  int64_t empty_slots = 0;    // capped expert choice: slots the cap left unfilled
  std::vector<double> first_fraction;  // [E] f_e: fraction of tokens whose argmax is e
  double aux = 0;             // the router's load-balancing loss for this group (unweighted)
};

// Switch / GShard's balance loss E · Σ_e f_e · P_e of a group, P_e the mean of
// p[:, e] and f the fraction of tokens whose first choice is e (GroupRoute's
// first_fraction); the rules fill GroupRoute::aux with it.
template <class T>
double balance_value(const T* p, int64_t S, int64_t E, const std::vector<double>& f);

// C = ceil(factor · k · S / E) clamped to [1, S]; factor ≤ 0 means no limit (C = S).
int64_t token_choice_capacity(double factor, int64_t k, int64_t S, int64_t E);
// C = ceil(c · S / E) clamped to [1, S].
int64_t expert_choice_capacity(double c, int64_t S, int64_t E);

// Switch Transformer: argmax expert, gate p (not renormalised); slots filled in
// token order; aux = E · Σ_e f_e · P_e.
template <class T>
GroupRoute route_switch_top1(const T* p, int64_t S, int64_t E, int64_t capacity);

// GShard: top-2, gates renormalised by (g1 + g2) before any drop; pass 1 places
// first choices in token order, pass 2 second choices in token order. With
// `second_uniform` (u_t per token) the second choice goes only if 2·g2 > u_t;
// nullptr means policy "all". aux as switch, f from first choices. pair
// (optional, [S, 2]) receives every token's (first, second) expert before capacity
// and the random draw: what its gates are renormalised over.
template <class T>
GroupRoute route_gshard_top2(const T* p, int64_t S, int64_t E, int64_t capacity,
                             const float* second_uniform, std::vector<int32_t>* pair = nullptr);

// Expert choice: each expert takes its top-C tokens by p[:, e]; gate p[t, e].
template <class T>
GroupRoute route_expert_choice(const T* p, int64_t S, int64_t E, int64_t capacity);

// Capped expert choice: the entropic assignment A of docs/routing.md (row sums C,
// column sums ≤ b, λ = 1e-3), then a pick in descending A under both caps that
// fills every slot whenever an assignment exists (greedy, then augmenting paths);
// empty_slots counts the rest. Gates stay p[t, e].
template <class T>
GroupRoute route_expert_choice_capped(const T* p, int64_t S, int64_t E, int64_t capacity,
                                      int64_t max_per_token);
// The solver alone (exposed for tests): A [S, E] maximising ⟨P, A⟩ + λ·H(A).
template <class T>
std::vector<double> entropic_assignment(const T* p, int64_t S, int64_t E, int64_t capacity,
                                       int64_t max_per_token, double lambda = 1e-3,
                                       int max_iterations = 100);

// Noisy top-k (Shazeer 2017) on noisy scores h [S, E]: keep the top-k of each row,
// gates = softmax over the kept k; capacity filled rank by rank, tokens in order.
// topk_expert / topk_gate (optional, [S, k]) receive every token's top-k before
// capacity.
template <class T>
GroupRoute route_noisy_topk(const T* h, int64_t S, int64_t E, int64_t k, int64_t capacity,
                            std::vector<int32_t>* topk_expert = nullptr,
                            std::vector<double>* topk_gate = nullptr);

// (Each is instantiated for float and double.)

// CV² = var / (mean² + 1e-10), population variance (noisy top-k's importance and
// load losses); with grad, also ∂CV²/∂x.
double cv_squared(const std::vector<double>& x, std::vector<double>* grad = nullptr);

// Experts per token of a group: histogram over 0, 1, 2, 3, 4+.
void experts_per_token_histogram(const GroupRoute& r, int64_t S, int64_t hist[5]);

}  // namespace sy
