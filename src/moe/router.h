#pragma once
// The router of one MoE layer: router logits z = x·W_gᵀ (fp32 master weights, no
// bias), p = softmax(z), groups, and the selection rule of one of docs/routing.md's
// routers (a subclass per router, one file each). Its product is a RoutePlan: for
// each expert, the tokens it processes and their combine weights. Backward turns
// ∂L/∂gate of every kept choice (plus the auxiliary losses) into gradients of the
// router weights and of x. Routers never talk to other ranks.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/layer.h"
#include "model/model_config.h"
#include "moe/moe_config.h"
#include "moe/routing.h"

namespace sy {

// Where and when a forward happens: what random draws are keyed by.
struct RouteContext {
  uint64_t seed = 0;
  int64_t step = 0;
  bool training = true;
  int64_t batch = 0, seq = 0;  // the micro-batch's shape (for by_position groups)
  int64_t first_token = 0;     // global index of the micro-batch's first token
  // Inference (generation, and the full pass it is checked against): every token is
  // routed alone, as a new token must be (docs/routing.md): token choice keeps its
  // top choices (no capacity binds a single token), expert choice uses the
  // threshold rule. Implies !training.
  bool inference = false;
};

// For each expert, its slots: the rows of x it processes, in slot order, and the
// combine weight of each. Experts are laid out one after another (expert-major).
// With moe.device_routing the slots, their rows and gates stay in the backend's
// memory (RoutePlanTensors, padded: G·C slots per expert) and the host holds only
// expert_begin, which the fixed capacity determines.
struct RoutePlan {
  std::vector<int64_t> expert_begin;  // [E+1]
  std::vector<int32_t> slot_token;    // [slots] row of x (host plans)
  std::vector<double> slot_gate;      // [slots] (host plans)
  bool on_backend = false;
  int64_t slots() const { return on_backend ? expert_begin.back() : static_cast<int64_t>(slot_token.size()); }
};

struct RouterStats {
  std::vector<int64_t> tokens_per_expert;  // [E]
  int64_t tokens = 0, groups = 0, choices = 0, dropped = 0, empty_slots = 0;
  int64_t capacity = 0;        // slots per expert per group (the last group's)
  int64_t histogram[5] = {0, 0, 0, 0, 0};  // experts per token: 0, 1, 2, 3, 4+
  double entropy = 0;          // mean over tokens of −Σ_e p log p (nats)
  double mean_gate = 0;        // mean combine weight of kept choices
  double balance = 0;          // switch / gshard: mean over groups of E·Σ f·P (1 = uniform)
  double importance = 0, load = 0;  // noisy_topk: CV² of importance and load
  double z = 0;                // mean_t (logsumexp z_t)²
  double aux_weighted = 0;     // what this layer adds to the training loss
};

class Router {
 public:
  Router(LayerEnv env, const std::string& prefix, const MoeConfig& cfg, int64_t d_model,
         int layer, Arch arch);
  virtual ~Router() = default;
  // max_seq bounds the by-position groups of a micro-batch.
  void allocate(Arena& arena, int64_t n_tokens, int64_t max_seq);
  // Slots a plan on the backend can have at most (0 without moe.device_routing).
  int64_t backend_slots(int64_t n_tokens, int64_t max_seq) const;

  // x [N, D] → plan. Fills stats(). With moe.device_routing, and when the forward
  // allows it (training or group evaluation with equal groups), the plan is
  // written to `on_backend` and plan.on_backend is set; otherwise a host plan.
  void forward(const Tensor& x, const RouteContext& ctx, RoutePlan& plan,
               const RoutePlanTensors& on_backend = {});
  // dgate [slots] = ∂L/∂(combine weight) per slot of the last plan; auxiliary losses
  // enter with weight aux_scale. Accumulates router weight gradients; dx += ∂L/∂x.
  // A host plan's dgate is on the host, a backend plan's on the backend.
  void backward(const std::vector<double>& dgate, double aux_scale, Tensor dx);
  void backward(const Tensor& dgate, double aux_scale, Tensor dx);

  // (A backend plan's statistics are read from the backend here, once per forward.)
  const RouterStats& stats() const;
  // Token choice, last forward: the choices each row of x wanted (its top
  // choices_per_token() experts by selection score) that capacity dropped, as
  // (row, expert, probability p[row, expert]). Expert choice drops nothing.
  struct Dropped {
    int32_t row, expert;
    double p;
  };
  std::vector<Dropped> dropped_choices() const;
  // Tests: reuse the last forward's selections, recomputing only the gates (so a
  // finite difference sees a smooth function).
  void hold_selections(bool hold) { hold_ = hold; }
  // Expert-choice thresholds for causal evaluation (training state). Each training
  // forward adds, per group, the C-th largest score of every expert to this step's
  // samples; end_step() folds their mean into θ once per step (an EMA with
  // moe.expert_choice.threshold_decay), so the window is the same ~1/(1−decay)
  // steps whatever the grouping. threshold_samples(): [E sums…, group count].
  const std::vector<double>& thresholds() const { return thresholds_; }
  std::vector<double>& threshold_samples();
  void end_step();  // (with the samples already summed over ranks)
  void set_eval_routing(EvalRouting r) { cfg_.eval_routing = r; }
  void set_thresholds(std::vector<double> t) { thresholds_ = std::move(t); }

 protected:
  // A routing group: its rows of x and its slices of the router's values.
  struct Group {
    std::vector<int32_t> rows;  // [S] rows of x
    int64_t S = 0;
    std::vector<double> p, z, h;  // [S, E] probabilities, logits, selection scores
    std::vector<double> sigma, noise;  // [S, E] noisy_topk only
    std::vector<float> uniform;        // [S] gshard_top2's second-choice draws
    GroupRoute route;
    // noisy_topk: each token's top-k (before capacity) and their gates
    std::vector<int32_t> topk_expert;
    std::vector<double> topk_gate;
  };

  // Gradients of one group, [S, E] each, accumulated by the hooks below:
  // dp (probabilities), dh (selection scores; noisy_topk's h = z + n·σ),
  // dz (logits directly), dsigma (noise scale σ).
  struct GroupGrads {
    std::vector<double> dp, dh, dz, dsigma;
  };

  // The selection rule on one group (g.p, g.z, g.h filled).
  virtual GroupRoute select(Group& g, int64_t capacity) = 0;
  // Recomputes the gates of g.route's held choices from the current values.
  virtual void regate(Group& g) = 0;
  // dgate [choices of g.route] → gradients.
  virtual void gate_backward(const Group& g, const double* dgate, GroupGrads& d) const = 0;
  // The router's auxiliary loss on g (unweighted); with d, also its gradient
  // times `scale`.
  virtual double aux(const Group& g, double scale, GroupGrads* d) const {
    (void)g, (void)scale, (void)d;
    return 0.0;
  }
  virtual double aux_weight() const { return 0.0; }
  virtual int64_t capacity(int64_t S, bool training) const = 0;
  // Token choice: how many experts a token asks for (0: expert choice).
  virtual int64_t choices_per_token() const { return 0; }
  virtual bool uses_noise() const { return false; }
  virtual bool groups_by_position() const { return false; }

  // E · Σ_e f_e · P_e (Switch / GShard) with f fixed; gradient into d.dp.
  double balance_aux(const Group& g, double scale, GroupRoute const& r, GroupGrads* d) const;
  // Router-specific statistics of the last forward (noisy_topk's two losses).
  virtual void add_stats(RouterStats& s) const { (void)s; }

  const MoeConfig& cfg() const { return cfg_; }
  int64_t experts() const { return E_; }
  const RouteContext& context() const { return ctx_; }

 private:
  void make_groups(const RouteContext& ctx, int64_t N);
  void fill_plan(RoutePlan& plan);
  void fill_stats(const RoutePlan& plan);
  void sample_thresholds();
  // Routing on the backend (moe.device_routing): whether this forward can, its
  // spec, and the statistics it left in backend memory.
  bool routes_on_backend(const RouteContext& ctx, int64_t N) const;
  RouteSpec backend_spec(const RouteContext& ctx, int64_t N) const;
  void forward_on_backend(const RouteContext& ctx, int64_t N, RoutePlan& plan, const RoutePlanTensors& t);
  void read_backend_stats() const;
  RouteState backend_view() const;    // the state, sized for the last forward
  RouteInputs backend_inputs() const;  // the inputs of the last forward
  JitterSpec jitter_spec() const;      // the last forward's jitter draws
  void router_input_backward(int64_t N, Tensor dx, bool noise);

  LayerEnv env_;
  MoeConfig cfg_;
  int64_t D_, E_;
  int layer_;
  bool hold_ = false;
  ParamId w_gate_;       // [E, D]
  ParamId w_noise_ = -1;  // [E, D] noisy_topk
  Tensor xr_;            // [N, D] router input (x, or x ⊙ jitter)
  Tensor logits_, probs_, noise_logits_;  // [N, E]
  Tensor dlogits_;       // [N, E]
  Tensor dnoise_;        // [N, E] noisy_topk: ∂L/∂(x·W_noiseᵀ)
  Tensor dx_;            // [N, D]
  std::vector<double> jitter_;  // [N, D] multipliers of the last forward (empty: none)
  std::vector<double> lse_;     // [N]
  std::vector<double> host_z_, host_p_, host_nz_;  // [N, E]
  std::vector<Group> groups_;
  std::vector<int64_t> slot_group_, slot_choice_;  // plan slot → (group, choice)
  RouteContext ctx_;
  mutable RouterStats stats_;  // (mutable: a backend plan's are read on demand)
  std::vector<double> thresholds_;  // [E] (empty until the first training step)
  std::vector<double> theta_samples_;  // [E + 1]: this step's sums of C-th scores, groups
  // moe.device_routing
  std::optional<RouteRule> backend_rule_;
  RouteSpec spec_;                 // of the last forward on the backend
  RoutePlanTensors backend_plan_;  // its plan (the dispatcher's buffers)
  bool backend_forward_ = false;   // the last forward routed on the backend
  bool backend_jitter_ = false;    // … and jittered its input there
  RouteState backend_state_;       // first_count [≤ N·E], lse [N], stats, scratch
  Tensor theta_sums_;              // [E] this step's threshold samples, on the backend
  int64_t theta_groups_ = 0;       // … and how many groups they sum over
  mutable bool stats_pending_ = false;  // backend_stats_ not yet read into stats_
};

// Switch and GShard: token choice with a capacity of ⌈factor · k · S / E⌉ slots and
// the balance loss E · Σ f_e · P_e.
class BalancedTokenChoice : public Router {
 public:
  using Router::Router;

 protected:
  double aux(const Group& g, double scale, GroupGrads* d) const override {
    return balance_aux(g, scale, g.route, d);
  }
  double aux_weight() const override { return cfg().aux_coefficient(); }
  int64_t capacity(int64_t S, bool training) const override {
    return token_choice_capacity(training ? cfg().capacity_factor : cfg().eval_capacity_factor,
                                 choices_per_token(), S, experts());
  }
};

std::unique_ptr<Router> make_router(LayerEnv env, const std::string& prefix, const MoeConfig& cfg,
                                    int64_t d_model, int layer, Arch arch);

}  // namespace sy
