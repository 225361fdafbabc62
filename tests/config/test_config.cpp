#include <gtest/gtest.h>

#include <random>

#include "config/config.h"
#include "core/errors.h"

namespace sy {
namespace {

// Returns the error message of parsing `yaml` (with `sets`), or "" if it parsed.
std::string error_of(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  try {
    parse_config(yaml, "test.yaml", sets);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::bad_input);
    return e.what();
  }
  return "";
}

struct BadCase {
  const char* yaml;
  const char* expected;  // substring of the message
};

TEST(Config, TableOfInvalidConfigs) {
  const BadCase cases[] = {
      {"modle:\n  d_model: 4\n", "test.yaml:1: modle = (a mapping): unknown key (did you mean 'model'?)"},
      {"model:\n  d_modle: 4\n", "test.yaml:2: model.d_modle = 4: unknown key (did you mean 'd_model'?)"},
      {"model:\n  d_model: wide\n", "test.yaml:2: model.d_model = wide: must be an integer"},
      {"model:\n  d_model: 2.5\n", "model.d_model = 2.5: must be an integer"},
      {"optim:\n  lr: -0.1\n", "test.yaml:2: optim.lr = -0.1: must be positive"},
      {"optim:\n  lr: fast\n", "optim.lr = fast: must be a number"},
      {"model:\n  d_model: 100\n  n_heads: 3\n", "test.yaml:3: model.n_heads = 3: must divide model.d_model (100)"},
      {"model:\n  arch: transformer\n", "model.arch = transformer: must be one of: decoder, encoder"},
      {"model:\n  tie_embeddings: maybe\n", "model.tie_embeddings = maybe: must be a boolean"},
      {"seed: -3\n", "seed = -3: must be a non-negative integer"},
      {"train:\n  seq_len: 512\n", "train.seq_len = 512: must not exceed model.max_seq (256)"},
      {"model: 5\n", "model = 5: must be a mapping"},
      {"train:\n  steps:\n", "train.steps = (empty): has no value"},
      {"data:\n  source: bytes\n", "data.path = : is required unless data.source is synthetic"},
      {"optim:\n  schedule: linear\n", "must be one of: constant, inverse_sqrt, cosine"},
      {"model: {d_model: [1, 2]}\n", "model.d_model = (a list): must be an integer"},
      {"train:\n  label_smoothing: 1.0\n", "train.label_smoothing = 1: must be in [0, 1)"},
      {"key: [unclosed\n", "test.yaml:2:1: not valid YAML"},
      {"- a\n- b\n", "the top level must be a mapping"},
      {"moe:\n  num_experts: 4\n  router: noisy_topk\n  top_k: 5\n", "moe.top_k = 5: must not exceed moe.num_experts (4)"},
      {"moe:\n  num_experts: 4\n  router: expert_choice\n  expert_choice:\n    capacity: 0\n",
       "test.yaml:5: moe.expert_choice.capacity = 0: must be positive for expert_choice"},
      {"moe:\n  num_experts: 4\n  router: sinkhorn\n", "moe.router = sinkhorn: must be one of: switch_top1, gshard_top2, noisy_topk, expert_choice"},
      {"moe:\n  num_experts: 1\n  router: gshard_top2\n", "gshard_top2 needs at least 2 experts"},
      {"moe:\n  num_experts: 4\n  every: 9\n", "moe.every = 9: must not exceed model.n_layers (4)"},
      {"moe:\n  num_experts: 4\n  router: expert_choice\n  expert_choice:\n    max_experts_per_token: 5\n",
       "moe.expert_choice.max_experts_per_token = 5: must be in [0, moe.num_experts]"},
      {"moe:\n  num_experts: 4\n  eval_capacity_factor: -1\n  device_routing: true\n",
       "moe.eval_capacity_factor = -1: must be positive with moe.device_routing"},
      {"moe:\n  num_experts: 4\n  router: expert_choice\n  device_routing: true\n  expert_choice:\n"
       "    max_experts_per_token: 2\n",
       "capped expert choice routes on the host only"},
      {"moe:\n  num_experts: 4\n  capacity_factor: 0\n  device_routing: true\n",
       "moe.capacity_factor = 0: must be positive with moe.device_routing"},
  };
  for (const BadCase& c : cases) {
    const std::string msg = error_of(c.yaml);
    EXPECT_NE(msg.find(c.expected), std::string::npos)
        << "config:\n" << c.yaml << "expected: " << c.expected << "\ngot: " << msg;
  }
}

TEST(Config, ReportsEveryProblemAtOnce) {
  const std::string msg = error_of(
      "model:\n  d_model: 100\n  n_heads: 3\n  colour: red\noptim:\n  lr: 0\n  beta1: 1.5\n");
  EXPECT_NE(msg.find("4 problems"), std::string::npos) << msg;
  for (const char* part : {"model.colour", "model.n_heads", "optim.lr", "optim.beta1"})
    EXPECT_NE(msg.find(part), std::string::npos) << part << " missing from:\n" << msg;
}

TEST(Config, OverridesApplyAndAreNamedInErrors) {
  const Config c = parse_config("optim:\n  lr: 0.1\n", "t.yaml", {"optim.lr=0.5", "model.d_model=64"});
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.5);
  EXPECT_EQ(c.model.d_model, 64);
  const std::string msg = error_of("", {"model.n_heads=5"});
  EXPECT_NE(msg.find("--set model.n_heads=5: model.n_heads = 5: must divide"), std::string::npos) << msg;
  EXPECT_NE(error_of("", {"model.widht=3"}).find("--set model.widht=3: model.widht = 3: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("", {"novalue"}).find("expected KEY=VALUE"), std::string::npos);
}

TEST(Config, ResolvedYamlRoundTrips) {
  Config c = parse_config("model:\n  arch: encoder\n  norm: rmsnorm\noptim:\n  lr: 3.0e-4\n", "t.yaml");
  c.seed = 99;
  const std::string yaml = to_yaml(c);
  const Config back = parse_config(yaml, "resolved.yaml");
  EXPECT_EQ(to_yaml(back), yaml);
  EXPECT_EQ(back.model.arch, Arch::encoder);
  EXPECT_EQ(back.model.norm, NormKind::rmsnorm);
  EXPECT_DOUBLE_EQ(back.optim.lr, 3e-4);
  EXPECT_EQ(back.seed, 99u);
}

TEST(Config, EmptyFileMeansDefaults) {
  const Config c = parse_config("", "empty.yaml");
  EXPECT_EQ(c.model.d_model, ModelConfig{}.d_model);
}

}  // namespace
}  // namespace sy

namespace sy {
namespace {

// Fuzz: a full config mutated byte by byte (flips, cuts, YAML's special
// characters); every outcome is a config or a clean Error(bad_input), never another
// exception or a crash. Fixed seed, bounded count.
TEST(Config, FuzzedConfigsAreRefusedCleanly) {
  const std::string base = to_yaml(Config{});
  std::mt19937_64 rng(7);
  const std::string specials = ":-[]{},#&*!|>'\"%@`\n \t.e9x";
  int refused = 0;
  for (int round = 0; round < 1500; ++round) {
    std::string s = base;
    for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0; --edits) {
      const size_t at = rng() % (s.size() + 1);
      switch (rng() % 4) {
        case 0: if (at < s.size()) s[at] = specials[rng() % specials.size()]; break;
        case 1: s.erase(at, rng() % 12); break;
        case 2: s.insert(at, std::string(1 + rng() % 4, specials[rng() % specials.size()])); break;
        default: if (at < s.size()) s[at] = static_cast<char>(rng()); break;
      }
    }
    try {
      parse_config(s, "fuzz.yaml");
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), ExitCode::bad_input) << "round " << round << ": " << e.what();
      ++refused;
    } catch (const std::exception& e) {
      FAIL() << "round " << round << ": not a clean error: " << e.what() << "\n" << s;
    }
  }
  EXPECT_GT(refused, 500) << "the mutations should break most configs";
}

}  // namespace
}  // namespace sy
