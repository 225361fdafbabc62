// The op table (op_table.h): the harness, then one block of cases per op. Shapes
// are awkward on purpose: size 1, dimensions that are not multiples of 8, repeated
// indices, rows without a target, an expert with no tokens.
#include "backend/op_table.h"

#include <algorithm>
#include <cmath>

#include "backend/reference.h"
#include "test_util.h"

namespace sy::optest {

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- the harness -----------------------------------------------------------------------

Host run_case(Ops& ops, DType dtype, const OpCase& c, const Host& inputs) {
  std::vector<Buffer> buffers;
  buffers.reserve(inputs.size());
  Bound bound;
  for (const auto& [name, h] : inputs) {
    const DType dt = h.index ? DType::i32 : dtype;
    buffers.emplace_back(ops, std::max<size_t>(static_cast<size_t>(h.numel()) * dtype_size(dt), 64));
    Tensor t = buffers.back().as(dt, h.shape);
    if (h.numel() > 0) {
      if (h.index) {
        ops.from_host(t, h.i.data());
      } else if (dt == DType::f32) {
        const std::vector<float> f(h.f.begin(), h.f.end());
        ops.from_host(t, f.data());
      } else {
        ops.from_host(t, h.f.data());
      }
    }
    bound[name] = t;
  }
  c.run(ops, bound);
  ops.synchronize();
  Host out = inputs;
  for (auto& [name, h] : out) {
    if (h.numel() == 0) continue;
    const Tensor& t = bound.at(name);
    if (h.index) {
      ops.to_host(h.i.data(), t);
    } else if (t.dtype == DType::f32) {
      std::vector<float> f(static_cast<size_t>(h.numel()));
      ops.to_host(f.data(), t);
      h.f.assign(f.begin(), f.end());
    } else {
      ops.to_host(h.f.data(), t);
    }
  }
  return out;
}

double tolerance_ratio(const Vec& got, const Vec& want, Tol t) {
  if (got.size() != want.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i]) || std::isnan(got[i])) {
      if (std::isnan(want[i]) != std::isnan(got[i])) return INFINITY;
      continue;
    }
    const double d = std::abs(got[i] - want[i]);
    const double allowed = t.atol + t.rtol * std::abs(want[i]);
    if (allowed == 0) {
      if (d != 0) return INFINITY;
      continue;
    }
    worst = std::max(worst, d / allowed);
  }
  return worst;
}

Vec numeric_gradient(const OpCase& c, Host h, const std::string& input, double step) {
  Vec& x = h.at(input).f;
  const Vec& dout = h.at(c.dout).f;
  auto loss = [&] {
    const Vec y = c.forward(h);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += dout[i] * y[i];
    return s;
  };
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + step;
    const double up = loss();
    x[i] = saved - step;
    const double down = loss();
    x[i] = saved;
    g[i] = (up - down) / (2 * step);
  }
  return g;
}

// ---- building blocks -------------------------------------------------------------------

namespace {

HostTensor rnd(std::vector<int64_t> shape, uint64_t seed, double scale = 1.0, double shift = 0.0) {
  HostTensor t;
  t.shape = std::move(shape);
  t.f = test::random_vec(t.numel(), seed, scale);
  for (double& v : t.f) v += shift;
  return t;
}
HostTensor zeros(std::vector<int64_t> shape) {
  HostTensor t;
  t.shape = std::move(shape);
  t.f.assign(static_cast<size_t>(t.numel()), 0.0);
  return t;
}
HostTensor filled(std::vector<int64_t> shape, double v) {
  HostTensor t = zeros(std::move(shape));
  std::fill(t.f.begin(), t.f.end(), v);
  return t;
}
HostTensor idx(std::vector<int64_t> shape, std::vector<int32_t> values) {
  HostTensor t;
  t.shape = std::move(shape);
  t.index = true;
  t.i = std::move(values);
  return t;
}
std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

const Activation kActs[] = {Activation::gelu, Activation::silu, Activation::relu};

// An AttentionCache over bound tensors "c.q", "c.k", ... (made by attention_host).
AttentionCache bind_cache(Bound& b) {
  AttentionCache c;
  c.q = b.at("c.q"), c.k = b.at("c.k"), c.v = b.at("c.v"), c.out_heads = b.at("c.out_heads");
  c.dq = b.at("c.dq"), c.dk = b.at("c.dk"), c.dv = b.at("c.dv");
  c.probs = b.at("c.probs"), c.dprobs = b.at("c.dprobs");
  return c;
}
void add_cache(Host& h, int64_t B, int64_t NH, int64_t T, int64_t D) {
  for (const char* n : {"c.q", "c.k", "c.v", "c.out_heads", "c.dq", "c.dk", "c.dv"})
    h[n] = zeros({B, NH, T, D});
  for (const char* n : {"c.probs", "c.dprobs"}) h[n] = zeros({B, NH, T, T});
}

// ---- cases -------------------------------------------------------------------------------

void gemm_cases(std::vector<OpCase>& cs) {
  struct G {
    int64_t M, N, K;
    std::vector<std::pair<bool, bool>> trans;
  };
  const std::vector<std::pair<bool, bool>> all = {{false, false}, {false, true}, {true, false}, {true, true}};
  const G shapes[] = {{1, 1, 1, {{false, false}}},  {7, 13, 5, all},
                      {9, 1, 17, {{true, false}}},   {33, 31, 3, all},
                      {64, 48, 40, {{false, false}}}, {1, 100, 9, {{false, true}}},
                      {128, 96, 200, {{true, true}}}};
  for (const G& g : shapes)
    for (auto [ta, tb] : g.trans) {
      OpCase c;
      c.name = "gemm_" + dims({g.M, g.N, g.K}) + (ta ? "_t" : "_n") + (tb ? "t" : "n");
      const int64_t M = g.M, N = g.N, K = g.K;
      c.make = [=] { return Host{{"A", rnd({M * K}, 1)}, {"B", rnd({K * N}, 2)}, {"C", rnd({M * N}, 3)}}; };
      c.run = [=](Ops& ops, Bound& b) { ops.gemm(ta, tb, M, N, K, 0.7, b["A"], b["B"], 0.3, b["C"]); };
      c.outputs = {"C"};
      c.reference = [=](Host& h) { ref::gemm(ta, tb, M, N, K, 0.7, h["A"].f, h["B"].f, 0.3, h["C"].f); };
      c.f32 = {2e-4, 2e-5};
      c.device = {1e-5, 1e-5 * std::sqrt(static_cast<double>(K))};
      c.bf16 = true;  // exact products, fp32 sums in another order
      c.bf16_device = {1e-5, 1e-5 * std::sqrt(static_cast<double>(K))};
      cs.push_back(c);
    }
  for (int64_t batch : {1, 3, 9}) {
    OpCase c;
    c.name = "gemm_strided_batched_b" + std::to_string(batch);
    const int64_t M = 5, N = 7, K = 3, sa = M * K + 2, sb = K * N + 1, sc = M * N + 4;
    c.make = [=] {
      return Host{{"A", rnd({batch * sa}, 1)}, {"B", rnd({batch * sb}, 2)}, {"C", rnd({batch * sc}, 3)}};
    };
    c.run = [=](Ops& ops, Bound& b) {
      ops.gemm_strided_batched(true, false, M, N, K, 1.5, b["A"], sa, b["B"], sb, 0.5, b["C"], sc, batch);
    };
    c.outputs = {"C"};
    c.reference = [=](Host& h) {
      for (int64_t i = 0; i < batch; ++i) {
        Vec a(h["A"].f.begin() + i * sa, h["A"].f.begin() + i * sa + M * K);
        Vec bb(h["B"].f.begin() + i * sb, h["B"].f.begin() + i * sb + K * N);
        Vec cc(h["C"].f.begin() + i * sc, h["C"].f.begin() + i * sc + M * N);
        ref::gemm(true, false, M, N, K, 1.5, a, bb, 0.5, cc);
        std::copy(cc.begin(), cc.end(), h["C"].f.begin() + i * sc);
      }
    };
    c.f32 = {2e-4, 2e-5};
    c.device = {1e-5, 1e-5 * std::sqrt(3.0)};
    c.bf16 = true;
    c.bf16_device = c.device;
    cs.push_back(c);
  }
  // K = 0: C = beta·C, and beta = 0 writes zeros even over NaN, as BLAS: exactly.
  for (double beta : {0.0, 0.5}) {
    OpCase c;
    c.name = beta == 0 ? "gemm_k0_beta0" : "gemm_k0_beta05";
    const int64_t M = 3, N = 5, batch = 2;
    c.make = [=] {
      HostTensor C = zeros({batch * M * N});
      for (size_t i = 0; i < C.f.size(); ++i) C.f[i] = i % 2 ? std::nan("") : static_cast<double>(i);
      return Host{{"A", zeros({0})}, {"B", zeros({0})}, {"C", C}};
    };
    c.run = [=](Ops& ops, Bound& b) {
      ops.gemm_strided_batched(true, false, M, N, 0, 1.0, b["A"], 0, b["B"], 0, beta, b["C"], M * N, batch);
    };
    c.outputs = {"C"};
    c.reference = [=](Host& h) {
      for (double& v : h["C"].f) v = beta == 0 ? 0.0 : beta * v;
    };
    c.f64 = c.f32 = c.device = {0, 0};
    cs.push_back(c);
  }
}

void embedding_cases(std::vector<OpCase>& cs) {
  for (auto [B, T, C, V] : {std::array<int64_t, 4>{1, 1, 1, 2}, {3, 5, 7, 11}, {2, 9, 16, 4}}) {
    OpCase c;
    c.name = "embedding_forward_" + dims({B, T, C, V});
    c.make = [=] {
      std::vector<int32_t> ids(static_cast<size_t>(B * T));
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7 + 3) % V);
      return Host{{"ids", idx({B, T}, ids)}, {"wte", rnd({V, C}, 4)}, {"wpe", rnd({T + 2, C}, 5)},
                  {"out", zeros({B, T, C})}};
    };
    c.run = [](Ops& ops, Bound& b) { ops.embedding_forward(b["out"], b["ids"], b["wte"], b["wpe"]); };
    c.outputs = {"out"};
    c.reference = [=](Host& h) {
      for (int64_t i = 0; i < B * T; ++i)
        for (int64_t k = 0; k < C; ++k)
          h["out"].f[i * C + k] = h["wte"].f[h["ids"].i[i] * C + k] + h["wpe"].f[(i % T) * C + k];
    };
    c.f32 = {1e-6, 1e-7};
    c.device = {1e-6, 1e-7};
    cs.push_back(c);
  }
  OpCase c;  // repeated ids accumulate; parameter gradients accumulate onto what is there
  c.name = "embedding_backward_repeated_ids";
  const int64_t B = 2, T = 3, C = 5, V = 4;
  c.make = [=] {
    return Host{{"ids", idx({B, T}, {0, 2, 2, 3, 0, 0})}, {"wte", rnd({V, C}, 1)}, {"wpe", rnd({T, C}, 2)},
                {"dout", rnd({B, T, C}, 3)}, {"dwte", rnd({V, C}, 4)}, {"dwpe", rnd({T, C}, 5)}};
  };
  c.run = [](Ops& ops, Bound& b) { ops.embedding_backward(b["dwte"], b["dwpe"], b["dout"], b["ids"]); };
  c.outputs = {"dwte", "dwpe"};
  c.forward = [=](const Host& h) {
    Vec out(static_cast<size_t>(B * T * C));
    for (int64_t i = 0; i < B * T; ++i)
      for (int64_t k = 0; k < C; ++k)
        out[i * C + k] = h.at("wte").f[h.at("ids").i[i] * C + k] + h.at("wpe").f[(i % T) * C + k];
    return out;
  };
  c.dout = "dout";
  c.grads = {{"wte", "dwte"}, {"wpe", "dwpe"}};
  c.f64 = {1e-6, 1e-8};
  c.device = {1e-6, 1e-7};
  cs.push_back(c);
}

// LayerNorm / RMSNorm forward in double: out, and rstd (saved for the backward).
Vec norm_ref(const Host& h, bool rms, int64_t N, int64_t C, Vec* rstd = nullptr) {
  const Vec& x = h.at("x").f;
  Vec out = ref::layernorm(x, h.at("w").f, h.at("b").f, N, C, 1e-5, rms);
  if (rstd)
    for (int64_t i = 0; i < N; ++i) {
      double mu = 0, var = 0;
      if (!rms) {
        for (int64_t k = 0; k < C; ++k) mu += x[i * C + k];
        mu /= C;
      }
      for (int64_t k = 0; k < C; ++k) var += (x[i * C + k] - mu) * (x[i * C + k] - mu);
      (*rstd)[i] = 1 / std::sqrt(var / C + 1e-5);
    }
  return out;
}

void norm_cases(std::vector<OpCase>& cs) {
  for (bool rms : {false, true}) {
    const NormKind kind = rms ? NormKind::rmsnorm : NormKind::layernorm;
    const std::string k = rms ? "rmsnorm" : "layernorm";
    for (auto [N, C] : {std::array<int64_t, 2>{1, 1}, {3, 2}, {5, 13}, {17, 64}, {3, 1000}}) {
      OpCase c;
      c.name = k + "_forward_" + dims({N, C});
      c.make = [=] {
        return Host{{"x", rnd({N, C}, 6, 3.0, 2.0)}, {"w", rnd({C}, 7)}, {"b", rnd({C}, 8)},
                    {"out", zeros({N, C})}, {"mean", zeros({N})}, {"rstd", zeros({N})}};
      };
      c.run = [=](Ops& ops, Bound& b) {
        ops.norm_forward(kind, b["out"], b["mean"], b["rstd"], b["x"], b["w"], b["b"], 1e-5);
      };
      c.outputs = {"out", "rstd"};
      c.reference = [=](Host& h) { h["out"].f = norm_ref(h, rms, N, C, &h["rstd"].f); };
      c.f64 = {1e-10, 1e-10};
      c.f32 = {1e-4, 1e-5};
      cs.push_back(c);
    }
    for (auto [N, C] : {std::array<int64_t, 2>{1, 3}, {4, 7}}) {
      OpCase c;
      c.name = k + "_backward_" + dims({N, C});
      c.make = [=] {
        return Host{{"x", rnd({N, C}, 6, 2.0)}, {"w", rnd({C}, 7)}, {"b", rnd({C}, 8)},
                    {"out", zeros({N, C})}, {"mean", zeros({N})}, {"rstd", zeros({N})},
                    {"dout", rnd({N, C}, 9)}, {"dx", rnd({N, C}, 10)}, {"dw", rnd({C}, 11)},
                    {"db", rnd({C}, 12)}};
      };
      c.run = [=](Ops& ops, Bound& b) {
        ops.norm_forward(kind, b["out"], b["mean"], b["rstd"], b["x"], b["w"], b["b"], 1e-5);
        ops.norm_backward(kind, b["dx"], b["dw"], b["db"], b["dout"], b["x"], b["w"], b["mean"], b["rstd"]);
      };
      c.outputs = {"dx", "dw"};
      if (!rms) c.outputs.push_back("db");
      c.forward = [=](const Host& h) { return norm_ref(h, rms, N, C); };
      c.dout = "dout";
      c.grads = {{"x", "dx"}, {"w", "dw"}};
      if (!rms) c.grads.push_back({"b", "db"});
      c.f64 = {1e-6, 1e-8};
      cs.push_back(c);
    }
    // Many rows: the device's two-stage weight-gradient reduction (several row
    // chunks, a ragged last one) against the CPU.
    for (auto [N, C] : {std::array<int64_t, 2>{4103, 70}, {40000, 5}}) {
      OpCase c;
      c.name = k + "_backward_many_rows_" + dims({N, C});
      c.make = [=] {
        return Host{{"x", rnd({N, C}, 21, 2.0)}, {"w", rnd({C}, 22)}, {"b", rnd({C}, 23)},
                    {"out", zeros({N, C})}, {"mean", zeros({N})}, {"rstd", zeros({N})},
                    {"dout", rnd({N, C}, 24)}, {"dx", zeros({N, C})}, {"dw", zeros({C})}, {"db", zeros({C})}};
      };
      c.run = [=](Ops& ops, Bound& b) {
        ops.norm_forward(kind, b["out"], b["mean"], b["rstd"], b["x"], b["w"], b["b"], 1e-5);
        ops.norm_backward(kind, b["dx"], b["dw"], b["db"], b["dout"], b["x"], b["w"], b["mean"], b["rstd"]);
      };
      c.outputs = {"dx", "dw"};
      if (!rms) c.outputs.push_back("db");
      c.device = {1e-4, 1e-5 * std::sqrt(static_cast<double>(N))};  // a sum of N terms of size ~1
      c.device_only = true;
      cs.push_back(c);
    }
  }
}

void activation_cases(std::vector<OpCase>& cs) {
  for (int a = 0; a < 3; ++a) {
    const Activation act = kActs[a];
    const std::string n = activation_name(act);
    OpCase f;
    f.name = n + "_forward";
    f.make = [] { return Host{{"x", rnd({7 * 33}, 9, 2.0)}, {"out", zeros({7 * 33})}}; };
    f.run = [=](Ops& ops, Bound& b) { ops.activation_forward(act, b["out"], b["x"]); };
    f.outputs = {"out"};
    f.reference = [=](Host& h) {
      for (size_t i = 0; i < h["x"].f.size(); ++i) h["out"].f[i] = ref::act(a, h["x"].f[i]);
    };
    f.device = {1e-6, 1e-7};
    cs.push_back(f);
    OpCase g;
    g.name = n + "_backward";
    g.make = [] {
      return Host{{"x", rnd({5, 9}, 10, 2.0)}, {"dout", rnd({5, 9}, 11)}, {"dx", zeros({5, 9})}};
    };
    g.run = [=](Ops& ops, Bound& b) { ops.activation_backward(act, b["dx"], b["dout"], b["x"]); };
    g.outputs = {"dx"};
    g.forward = [=](const Host& h) {
      Vec y(h.at("x").f.size());
      for (size_t i = 0; i < y.size(); ++i) y[i] = ref::act(a, h.at("x").f[i]);
      return y;
    };
    g.dout = "dout";
    g.grads = {{"x", "dx"}};
    g.f64 = {1e-6, 1e-8};
    g.device = {1e-6, 1e-7};
    cs.push_back(g);
    for (auto [N, H] : {std::array<int64_t, 2>{1, 1}, {4, 3}, {7, 33}}) {
      auto glu = [=](const Host& h) {
        const Vec& ag = h.at("ag").f;
        Vec out(static_cast<size_t>(N * H));
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < H; ++j) out[i * H + j] = ref::act(a, ag[i * 2 * H + j]) * ag[i * 2 * H + H + j];
        return out;
      };
      OpCase c;
      c.name = "glu_" + n + "_forward_" + dims({N, H});
      c.make = [=] { return Host{{"ag", rnd({N, 2 * H}, 12, 2.0)}, {"h", zeros({N, H})}}; };
      c.run = [=](Ops& ops, Bound& b) { ops.glu_forward(act, b["h"], b["ag"]); };
      c.outputs = {"h"};
      c.reference = [=](Host& h) { h["h"].f = glu(h); };
      c.device = {1e-6, 1e-7};
      cs.push_back(c);
      OpCase d;
      d.name = "glu_" + n + "_backward_" + dims({N, H});
      d.make = [=] {
        return Host{{"ag", rnd({N, 2 * H}, 13, 2.0)}, {"dh", rnd({N, H}, 14)}, {"dag", zeros({N, 2 * H})}};
      };
      d.run = [=](Ops& ops, Bound& b) { ops.glu_backward(act, b["dag"], b["dh"], b["ag"]); };
      d.outputs = {"dag"};
      d.forward = glu;
      d.dout = "dh";
      d.grads = {{"ag", "dag"}};
      d.f64 = {1e-6, 1e-8};
      d.device = {1e-6, 1e-7};
      cs.push_back(d);
    }
  }
}

void softmax_cases(std::vector<OpCase>& cs) {
  for (auto [R, C] : {std::array<int64_t, 2>{1, 1}, {3, 5}, {6, 129}}) {
    OpCase c;
    c.name = "softmax_forward_" + dims({R, C});
    c.make = [=] {
      Host h{{"x", rnd({R, C}, 10, 4.0)}, {"out", zeros({R, C})}};
      h["x"].f[0] += 1000.0;  // would overflow without max-subtraction
      return h;
    };
    c.run = [](Ops& ops, Bound& b) { ops.softmax_forward(b["out"], b["x"]); };
    c.outputs = {"out"};
    c.reference = [=](Host& h) { h["out"].f = ref::softmax(h["x"].f, R, C); };
    cs.push_back(c);
  }
  OpCase c;
  c.name = "softmax_backward_4x9";
  c.make = [] {
    return Host{{"x", rnd({4, 9}, 15, 2.0)}, {"out", zeros({4, 9})}, {"dout", rnd({4, 9}, 16)},
                {"dx", zeros({4, 9})}};
  };
  c.run = [](Ops& ops, Bound& b) {
    ops.softmax_forward(b["out"], b["x"]);
    ops.softmax_backward(b["dx"], b["dout"], b["out"]);
  };
  c.outputs = {"dx"};
  c.forward = [](const Host& h) { return ref::softmax(h.at("x").f, 4, 9); };
  c.dout = "dout";
  c.grads = {{"x", "dx"}};
  c.f64 = {1e-6, 1e-8};
  cs.push_back(c);
}

void attention_cases(std::vector<OpCase>& cs) {
  for (bool causal : {true, false}) {
    const std::string k = causal ? "causal" : "bidirectional";
    for (auto [B, T, C, NH] : {std::array<int64_t, 4>{1, 1, 2, 1}, {2, 5, 6, 3}, {3, 17, 16, 4}, {2, 7, 39, 3}}) {
      OpCase c;
      c.name = "attention_" + k + "_forward_" + dims({B, T, C, NH});
      c.make = [=] {
        Host h{{"qkv", rnd({B, T, 3 * C}, 11)}, {"out", zeros({B, T, C})}};
        add_cache(h, B, NH, T, C / NH);
        return h;
      };
      c.run = [=](Ops& ops, Bound& b) {
        AttentionCache cache = bind_cache(b);
        ops.attention_forward(b["out"], cache, b["qkv"], NH, causal);
      };
      c.outputs = {"out"};
      c.reference = [=](Host& h) { h["out"].f = ref::attention(h["qkv"].f, B, T, C, NH, causal); };
      c.f32 = {2e-4, 2e-5};
      c.device = {1e-5, 1e-5 * std::sqrt(static_cast<double>(T))};
      // The probabilities are rounded to bf16 before P·V: a last-bit difference in
      // one can move it to the neighbouring bf16 value (2⁻⁸ relative on that term).
      c.bf16 = true;
      c.bf16_device = {4e-3, 4e-3};
      cs.push_back(c);
    }
    const int64_t B = 2, T = 5, C = 6, NH = 3;
    OpCase c;
    c.name = "attention_" + k + "_backward_" + dims({B, T, C, NH});
    c.make = [=] {
      Host h{{"qkv", rnd({B, T, 3 * C}, 17)}, {"out", zeros({B, T, C})}, {"dout", rnd({B, T, C}, 18)},
             {"dqkv", zeros({B, T, 3 * C})}};
      add_cache(h, B, NH, T, C / NH);
      return h;
    };
    c.run = [=](Ops& ops, Bound& b) {
      AttentionCache cache = bind_cache(b);
      ops.attention_forward(b["out"], cache, b["qkv"], NH, causal);
      ops.attention_backward(b["dqkv"], cache, b["dout"], NH, causal);
    };
    c.outputs = {"dqkv"};
    c.forward = [=](const Host& h) { return ref::attention(h.at("qkv").f, B, T, C, NH, causal); };
    c.dout = "dout";
    c.grads = {{"qkv", "dqkv"}};
    c.f64 = {1e-6, 1e-8};
    c.device = {1e-5, 1e-5 * std::sqrt(static_cast<double>(T))};
    c.bf16 = true;
    c.bf16_device = {1e-2, 1e-2};  // as the forward, and the score gradients rounded again
    cs.push_back(c);
  }
}

// Fused attention: the function of the naive reference, and each row's log-sum-exp;
// T = 1, T across tiles of 32 keys (33, 70), head dims 2, 64 and 128, causal and not.
// Its backward against finite differences across a tile boundary (T = 35), and at
// head dims 64 and 128 against the CPU on a device.
void attention_fused_cases(std::vector<OpCase>& cs) {
  for (bool causal : {true, false}) {
    const std::string k = causal ? "causal" : "bidirectional";
    for (auto [B, T, C, NH] : {std::array<int64_t, 4>{1, 1, 64, 1}, {2, 5, 6, 3}, {2, 33, 128, 2}, {1, 70, 256, 2}}) {
      OpCase c;
      c.name = "attention_fused_" + k + "_forward_" + dims({B, T, C, NH});
      c.make = [=] {
        return Host{{"qkv", rnd({B, T, 3 * C}, 21)}, {"out", zeros({B, T, C})}, {"lse", zeros({B, NH, T})}};
      };
      c.run = [=](Ops& ops, Bound& b) { ops.attention_fused_forward(b["out"], b["lse"], b["qkv"], NH, causal); };
      c.outputs = {"out", "lse"};
      c.reference = [=](Host& h) { h["out"].f = ref::attention(h["qkv"].f, B, T, C, NH, causal, &h["lse"].f); };
      c.f32 = {2e-4, 2e-5};
      c.device = {1e-5, 1e-5 * std::sqrt(static_cast<double>(T))};
      // Both round the same running probabilities to bf16, but a last-bit difference
      // in one (sums in another order) can move it to the neighbouring bf16 value:
      // 2⁻⁸ relative on that term.
      c.bf16 = true;
      c.bf16_device = {4e-3, 4e-3};
      cs.push_back(c);
    }
    for (auto [B, T, C, NH, device_only] : {std::array<int64_t, 5>{2, 5, 6, 3, 0}, {1, 35, 8, 2, 0},
                                            {2, 70, 128, 2, 1}, {1, 40, 256, 2, 1}}) {
      OpCase c;
      c.name = "attention_fused_" + k + "_backward_" + dims({B, T, C, NH});
      c.make = [=] {
        return Host{{"qkv", rnd({B, T, 3 * C}, 23)}, {"out", zeros({B, T, C})}, {"lse", zeros({B, NH, T})},
                    {"dout", rnd({B, T, C}, 24)}, {"dqkv", zeros({B, T, 3 * C})},
                    {"delta", zeros({B, NH, T})}};
      };
      c.run = [=](Ops& ops, Bound& b) {
        ops.attention_fused_forward(b["out"], b["lse"], b["qkv"], NH, causal);
        ops.attention_fused_backward(b["dqkv"], b["delta"], b["dout"], b["qkv"], b["out"], b["lse"], NH, causal);
      };
      c.outputs = {"dqkv"};
      c.forward = [=](const Host& h) { return ref::attention(h.at("qkv").f, B, T, C, NH, causal); };
      c.dout = "dout";
      c.grads = {{"qkv", "dqkv"}};
      c.f64 = {1e-6, 1e-8};
      c.device = {1e-5, 1e-5 * std::sqrt(static_cast<double>(T))};
      c.device_only = device_only != 0;
      c.bf16 = true;
      c.bf16_device = {1e-2, 1e-2};  // as the forward, and ds = p·(dp − δ) rounded again
      cs.push_back(c);
    }
  }
}

// Decoding: position p of a random sequence, with the cache holding positions < p
// (and junk beyond, which must not be read): the output is the causal attention
// row p of the whole sequence, and the caches gain row p.
void attention_decode_cases(std::vector<OpCase>& cs) {
  for (auto [B, L, C, NH, P] : {std::array<int64_t, 5>{1, 1, 2, 1, 0}, {2, 6, 6, 3, 0}, {2, 6, 6, 3, 4},
                                {3, 9, 16, 4, 8}, {2, 40, 39, 3, 17}}) {
    OpCase c;
    c.name = "attention_decode_" + dims({B, L, C, NH}) + "_at" + std::to_string(P);
    // The whole sequence [B, P+1, 3C], from which the case's tensors are cut.
    auto sequence = [=] { return rnd({B, P + 1, 3 * C}, 23).f; };
    c.make = [=] {
      const Vec seq = sequence();
      Host h{{"qkv", zeros({B, 3 * C})}, {"k_cache", rnd({B, L, C}, 24, 1e3)}, {"v_cache", rnd({B, L, C}, 25, 1e3)},
             {"out", zeros({B, C})}, {"scores", zeros({B, NH, L})}};
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t j = 0; j < 3 * C; ++j) h["qkv"].f[b * 3 * C + j] = seq[(b * (P + 1) + P) * 3 * C + j];
        for (int64_t t = 0; t < P; ++t)
          for (int64_t j = 0; j < C; ++j) {
            h["k_cache"].f[(b * L + t) * C + j] = seq[(b * (P + 1) + t) * 3 * C + C + j];
            h["v_cache"].f[(b * L + t) * C + j] = seq[(b * (P + 1) + t) * 3 * C + 2 * C + j];
          }
      }
      return h;
    };
    c.run = [=](Ops& ops, Bound& b) {
      ops.attention_decode(b["out"], b["qkv"], b["k_cache"], b["v_cache"], b["scores"], P, NH);
    };
    c.outputs = {"out", "k_cache", "v_cache"};
    c.reference = [=](Host& h) {
      const Vec full = ref::attention(sequence(), B, P + 1, C, NH, /*causal=*/true);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < C; ++j) {
          h["out"].f[b * C + j] = full[(b * (P + 1) + P) * C + j];
          h["k_cache"].f[(b * L + P) * C + j] = h["qkv"].f[b * 3 * C + C + j];
          h["v_cache"].f[(b * L + P) * C + j] = h["qkv"].f[b * 3 * C + 2 * C + j];
        }
    };
    c.f32 = {2e-5, 2e-6};
    c.device = {1e-5, 1e-5 * std::sqrt(static_cast<double>(P + 1))};
    c.bf16 = true;  // rounded probabilities, as the full pass (see attention forward)
    c.bf16_device = {4e-3, 4e-3};
    cs.push_back(c);
  }
}

void loss_cases(std::vector<OpCase>& cs) {
  auto targets = [](int64_t N, int64_t V) {
    std::vector<int32_t> y(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) y[i] = static_cast<int32_t>((i * 5 + 1) % V);
    if (N > 1) y[1] = -1;  // a row without a target
    return y;
  };
  for (double eps : {0.0, 0.1, 0.5})
    for (auto [N, V] : {std::array<int64_t, 2>{1, 2}, {4, 7}, {9, 300}}) {
      OpCase c;
      c.name = "cross_entropy_forward_eps" + std::to_string(static_cast<int>(eps * 10)) + "_" + dims({N, V});
      c.make = [=] {
        return Host{{"z", rnd({N, V}, 13, 3.0)}, {"y", idx({N}, targets(N, V))}, {"loss", zeros({N})},
                    {"nll", zeros({N})}, {"lse", zeros({N})}};
      };
      c.run = [=](Ops& ops, Bound& b) {
        ops.cross_entropy_forward(b["loss"], b["nll"], b["lse"], b["z"], b["y"], eps);
      };
      c.outputs = {"loss", "nll"};
      c.reference = [=](Host& h) { ref::cross_entropy(h["z"].f, h["y"].i, N, V, eps, h["loss"].f, h["nll"].f); };
      c.f32 = {2e-5, 2e-5};
      cs.push_back(c);
    }
  for (double eps : {0.0, 0.2}) {
    const int64_t N = 4, V = 7;
    OpCase c;
    c.name = "cross_entropy_backward_eps" + std::to_string(static_cast<int>(eps * 10)) + "_" + dims({N, V});
    c.make = [=] {
      return Host{{"z", rnd({N, V}, 19, 2.0)}, {"y", idx({N}, targets(N, V))}, {"loss", zeros({N})},
                  {"nll", zeros({N})}, {"lse", zeros({N})}, {"scale", filled({N}, 0.7)},
                  {"dz", zeros({N, V})}};
    };
    c.run = [=](Ops& ops, Bound& b) {
      ops.cross_entropy_forward(b["loss"], b["nll"], b["lse"], b["z"], b["y"], eps);
      ops.cross_entropy_backward(b["dz"], b["z"], b["lse"], b["y"], eps, 0.7);
    };
    c.outputs = {"dz"};
    c.forward = [=](const Host& h) {
      Vec loss, nll;
      ref::cross_entropy(h.at("z").f, h.at("y").i, N, V, eps, loss, nll);
      return loss;
    };
    c.dout = "scale";  // the op's gradient is that of 0.7·Σ loss
    c.grads = {{"z", "dz"}};
    c.f64 = {1e-6, 1e-8};
    cs.push_back(c);
  }
}

void dispatch_cases(std::vector<OpCase>& cs) {
  const int64_t N = 5, C = 3, S = 7;
  const std::vector<int32_t> rows = {4, 0, 0, 2, 4, 1, 4};  // token 3 routed nowhere
  for (bool weighted : {true, false}) {
    OpCase c;
    c.name = std::string("gather_rows") + (weighted ? "_weighted" : "");
    c.make = [=] {
      return Host{{"x", rnd({N, C}, 20)}, {"rows", idx({S}, rows)}, {"w", rnd({S}, 22)}, {"out", zeros({S, C})}};
    };
    c.run = [=](Ops& ops, Bound& b) { ops.gather_rows(b["out"], b["x"], b["rows"], weighted ? b["w"] : Tensor{}); };
    c.outputs = {"out"};
    c.reference = [=](Host& h) {
      for (int64_t i = 0; i < S; ++i)
        for (int64_t k = 0; k < C; ++k)
          h["out"].f[i * C + k] = (weighted ? h["w"].f[i] : 1.0) * h["x"].f[rows[i] * C + k];
    };
    c.f64 = {1e-15, 0};
    c.f32 = c.device = {1e-7, 0};
    cs.push_back(c);
  }
  {
    OpCase c;  // an expert set with no slots at all
    c.name = "gather_rows_empty";
    c.make = [=] { return Host{{"x", rnd({N, C}, 20)}, {"rows", idx({0}, {})}, {"out", zeros({0, C})}}; };
    c.run = [](Ops& ops, Bound& b) { ops.gather_rows(b["out"], b["x"], b["rows"], Tensor{}); };
    c.outputs = {"out"};
    c.reference = [](Host&) {};
    cs.push_back(c);
  }
  {
    OpCase c;  // token-major combine, accumulating onto what is there, in slot order
    c.name = "combine_rows_weighted";
    c.make = [=] {
      return Host{{"y", rnd({S, C}, 21)}, {"w", rnd({S}, 22)}, {"begin", idx({N + 1}, {0, 2, 3, 4, 4, 7})},
                  {"slots", idx({S}, {1, 2, 5, 3, 0, 4, 6})}, {"out", rnd({N, C}, 23)}};
    };
    c.run = [](Ops& ops, Bound& b) { ops.combine_rows(b["out"], b["y"], b["begin"], b["slots"], b["w"]); };
    c.outputs = {"out"};
    c.reference = [=](Host& h) {
      for (int64_t i = 0; i < S; ++i)
        for (int64_t k = 0; k < C; ++k) h["out"].f[rows[i] * C + k] += h["w"].f[i] * h["y"].f[i * C + k];
    };
    c.f64 = {1e-14, 1e-14};
    cs.push_back(c);
  }
  {
    OpCase c;
    c.name = "row_dots";
    c.make = [=] {
      return Host{{"a", rnd({S, C}, 21)}, {"x", rnd({N, C}, 20)}, {"rows", idx({S}, rows)}, {"out", zeros({S})}};
    };
    c.run = [](Ops& ops, Bound& b) { ops.row_dots(b["out"], b["a"], b["x"], b["rows"]); };
    c.outputs = {"out"};
    c.reference = [=](Host& h) {
      for (int64_t i = 0; i < S; ++i) {
        double s = 0;
        for (int64_t k = 0; k < C; ++k) s += h["a"].f[i * C + k] * h["x"].f[rows[i] * C + k];
        h["out"].f[i] = s;
      }
    };
    c.f64 = {1e-14, 1e-14};
    cs.push_back(c);
  }
  {
    // A padded plan (routing on the backend): slots with row −1 are empty, their
    // gathered row and their dot are 0 (written over what was there).
    const std::vector<int32_t> padded = {4, -1, 0, -1, -1, 1, 2};
    OpCase g;
    g.name = "gather_rows_padded";
    g.make = [=] {
      return Host{{"x", rnd({N, C}, 20)}, {"rows", idx({S}, padded)}, {"w", rnd({S}, 22)}, {"out", rnd({S, C}, 24)}};
    };
    g.run = [](Ops& ops, Bound& b) { ops.gather_rows(b["out"], b["x"], b["rows"], b["w"]); };
    g.outputs = {"out"};
    g.reference = [=](Host& h) {
      for (int64_t i = 0; i < S; ++i)
        for (int64_t k = 0; k < C; ++k)
          h["out"].f[i * C + k] = padded[i] < 0 ? 0.0 : h["w"].f[i] * h["x"].f[padded[i] * C + k];
    };
    g.f64 = {1e-15, 0};
    g.f32 = g.device = {1e-7, 0};
    cs.push_back(g);
    OpCase d;
    d.name = "row_dots_padded";
    d.make = [=] {
      return Host{{"a", rnd({S, C}, 21)}, {"x", rnd({N, C}, 20)}, {"rows", idx({S}, padded)}, {"out", rnd({S}, 25)}};
    };
    d.run = [](Ops& ops, Bound& b) { ops.row_dots(b["out"], b["a"], b["x"], b["rows"]); };
    d.outputs = {"out"};
    d.reference = [=](Host& h) {
      for (int64_t i = 0; i < S; ++i) {
        double sum = 0;
        for (int64_t k = 0; padded[i] >= 0 && k < C; ++k) sum += h["a"].f[i * C + k] * h["x"].f[padded[i] * C + k];
        h["out"].f[i] = sum;
      }
    };
    d.f64 = {1e-14, 1e-14};
    cs.push_back(d);
  }
  {
    OpCase c;  // permute, then unpermute: the identity, bit for bit, on every backend
    c.name = "permute_then_unpermute_is_identity";
    const int64_t T = 6, W = 37;
    const std::vector<int32_t> perm = {3, 0, 5, 1, 4, 2};
    std::vector<int32_t> inverse(T);
    for (int64_t i = 0; i < T; ++i) inverse[perm[i]] = static_cast<int32_t>(i);
    std::vector<int32_t> begin(T + 1);
    for (int64_t t = 0; t <= T; ++t) begin[t] = static_cast<int32_t>(t);
    c.make = [=] {
      return Host{{"x", rnd({T, W}, 30)}, {"rows", idx({T}, perm)}, {"slots", idx({T}, inverse)},
                  {"begin", idx({T + 1}, begin)}, {"mid", zeros({T, W})}, {"out", zeros({T, W})}};
    };
    c.run = [](Ops& ops, Bound& b) {
      ops.gather_rows(b["mid"], b["x"], b["rows"], Tensor{});
      ops.combine_rows(b["out"], b["mid"], b["begin"], b["slots"], Tensor{});
    };
    c.outputs = {"out"};
    c.reference = [](Host& h) { h["out"].f = h["x"].f; };
    c.f64 = c.device = {0, 0};  // bit for bit
    c.f32 = {1e-7, 0};          // (the reference keeps the inputs in double)
    cs.push_back(c);
  }
}

void elementwise_cases(std::vector<OpCase>& cs) {
  const int64_t n = 1001;
  {
    OpCase c;
    c.name = "add";
    c.make = [=] { return Host{{"x", rnd({n}, 40)}, {"y", rnd({n}, 41)}}; };
    c.run = [](Ops& ops, Bound& b) { ops.add(b["y"], b["x"]); };
    c.outputs = {"y"};
    c.reference = [](Host& h) {
      for (size_t i = 0; i < h["y"].f.size(); ++i) h["y"].f[i] += h["x"].f[i];
    };
    c.f64 = {0, 0};
    c.f32 = {1e-7, 1e-7};
    c.device = {0, 0};
    cs.push_back(c);
  }
  {
    OpCase c;
    c.name = "scale_fill_copy";
    c.make = [=] { return Host{{"x", rnd({n}, 42)}, {"y", zeros({n})}, {"z", zeros({n})}}; };
    c.run = [](Ops& ops, Bound& b) {
      ops.scale(b["x"], -2.5);
      ops.copy(b["y"], b["x"]);
      ops.fill(b["z"], 0.25);
    };
    c.outputs = {"x", "y", "z"};
    c.reference = [](Host& h) {
      for (double& v : h["x"].f) v *= -2.5;
      h["y"].f = h["x"].f;
      std::fill(h["z"].f.begin(), h["z"].f.end(), 0.25);
    };
    c.f64 = {0, 0};
    c.f32 = {2e-7, 0};  // the inputs' rounding to f32
    c.device = {0, 0};
    cs.push_back(c);
  }
  for (bool squares : {false, true}) {
    OpCase c;  // sums in double with a fixed order (written to a tensor to compare)
    c.name = squares ? "sum_squares" : "sum";
    const int64_t m = 100003;
    c.make = [=] { return Host{{"x", rnd({m}, 14)}, {"result", zeros({1})}}; };
    c.run = [=](Ops& ops, Bound& b) {
      const double s = squares ? ops.sum_squares(b["x"]) : ops.sum(b["x"]);
      std::vector<double> host(1, s);
      Tensor r = b["result"];
      if (r.dtype == DType::f32) {
        const float f = static_cast<float>(s);
        ops.from_host(r, &f);
      } else {
        ops.from_host(r, host.data());
      }
    };
    c.outputs = {"result"};
    c.reference = [=](Host& h) {
      double s = 0;
      for (double v : h["x"].f) s += squares ? v * v : v;
      h["result"].f[0] = s;
    };
    c.f64 = {1e-9, 1e-9};
    c.f32 = {1e-5, 1e-3};
    c.device = {1e-6, 1e-6};
    cs.push_back(c);
  }
}

void adam_cases(std::vector<OpCase>& cs) {
  for (bool decoupled : {false, true}) {
    OpCase c;
    c.name = decoupled ? "adamw" : "adam";
    const int64_t n = 1001;
    c.make = [=] {
      Host h{{"p", rnd({n}, 70)}, {"g", rnd({n}, 71)}, {"m", rnd({n}, 72, 0.1)}, {"v", rnd({n}, 73, 0.1)}};
      for (double& e : h["v"].f) e = std::abs(e);
      return h;
    };
    const Ops::AdamArgs a{1e-2, 0.9, 0.95, 1e-8, 0.1, decoupled, 3, 0.5};
    c.run = [=](Ops& ops, Bound& b) { ops.adam_update(b["p"], b["g"], b["m"], b["v"], a); };
    c.outputs = {"p", "m", "v"};
    c.reference = [=](Host& h) {
      for (int64_t i = 0; i < n; ++i) {
        const double p0 = h["p"].f[i];
        const double gi = h["g"].f[i] * 0.5 + (decoupled ? 0 : 0.1 * p0);
        const double mi = 0.9 * h["m"].f[i] + 0.1 * gi, vi = 0.95 * h["v"].f[i] + 0.05 * gi * gi;
        const double mh = mi / (1 - std::pow(0.9, 3)), vh = vi / (1 - std::pow(0.95, 3));
        h["m"].f[i] = mi;
        h["v"].f[i] = vi;
        h["p"].f[i] = p0 - 1e-2 * (mh / (std::sqrt(vh) + 1e-8) + (decoupled ? 0.1 * p0 : 0));
      }
    };
    c.f64 = {1e-12, 1e-14};
    c.f32 = {1e-5, 1e-7};
    c.device = {1e-6, 1e-7};
    cs.push_back(c);
  }
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = [] {
    std::vector<OpCase> cs;
    gemm_cases(cs);
    embedding_cases(cs);
    norm_cases(cs);
    activation_cases(cs);
    softmax_cases(cs);
    attention_cases(cs);
    attention_decode_cases(cs);
    attention_fused_cases(cs);
    loss_cases(cs);
    dispatch_cases(cs);
    elementwise_cases(cs);
    adam_cases(cs);
    return cs;
  }();
  return cases;
}

}  // namespace sy::optest
