// Gradient buckets: how parameters are cut into buckets, and that each bucket's
// reduction starts during the backward pass, as soon as its last gradient is final,
// not after it (the order of events GradSync records; no timing involved). The
// reductions themselves are tested over real ranks (mpi_equivalence_np2_np4_np8,
// mpi_communicator_np2/np4).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "train/tiny_config.h"
#include "train/trainer.h"

namespace sy {
namespace {

Config moe_config(double bucket_mb, int64_t accum = 1) {
  Config cfg = test::tiny_config();
  cfg.moe.num_experts = 4;
  cfg.moe.router = RouterKind::switch_top1;
  cfg.model.tie_embeddings = false;  // a head of its own: the backward pass finishes it first
  cfg.parallel.bucket_mb = bucket_mb;
  cfg.train.grad_accum = accum;
  return cfg;
}

int index_of(const std::vector<std::string>& events, const std::string& e) {
  const auto it = std::find(events.begin(), events.end(), e);
  return it == events.end() ? -1 : static_cast<int>(it - events.begin());
}

TEST(GradSync, BucketsCoverEveryParameterOnceAndNeverMixDenseWithExperts) {
  for (double mb : {1e-6, 0.002, 25.0}) {
    auto ops = make_ops(Device::cpu);
    Trainer trainer(moe_config(mb), *ops);
    const ParamStore& ps = trainer.model().params();
    const GradSync& g = trainer.grad_sync();
    std::vector<int> seen(static_cast<size_t>(ps.size()), 0);
    ParamId expect_end = ps.size();  // buckets walk the parameters from the last one
    for (int b = 0; b < g.buckets(); ++b) {
      const GradSync::BucketInfo k = g.bucket(b);
      EXPECT_EQ(k.end, expect_end) << "bucket " << b;
      expect_end = k.first;
      int64_t numel = 0;
      for (ParamId i = k.first; i < k.end; ++i) {
        ++seen[static_cast<size_t>(i)];
        numel += ps.spec(i).numel;
        EXPECT_EQ(ps.spec(i).expert, k.expert) << ps.spec(i).name << " in bucket " << b;
      }
      EXPECT_EQ(k.numel, numel);
      // Within the size, unless one parameter alone is larger.
      if (k.end - k.first > 1) {
        EXPECT_LE(numel * 4, mb * 1e6) << "bucket " << b << " at " << mb << " MB";
      }
    }
    EXPECT_EQ(expect_end, 0);
    for (ParamId i = 0; i < ps.size(); ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], 1) << ps.spec(i).name;
    if (mb == 25.0) {
      EXPECT_LE(g.buckets(), 8) << "large buckets: one per run of dense or expert parameters";
    }
    if (mb == 1e-6) {
      EXPECT_EQ(g.buckets(), ps.size()) << "tiny buckets: one per parameter";
    }
  }
}

// The overlap: with one bucket per parameter, the first reductions start while the
// backward pass still has blocks and the embedding to do; every bucket starts once,
// before the step waits ("finish"); earlier micro-batches start nothing.
TEST(GradSync, ReductionsStartDuringTheBackwardPass) {
  for (int64_t accum : {1, 3}) {
    auto ops = make_ops(Device::cpu);
    Trainer trainer(moe_config(1e-6, accum), *ops);
    std::vector<std::string> events;
    trainer.grad_sync().record_events(&events);
    trainer.train_step(0);
    const int buckets = trainer.grad_sync().buckets();
    const int finish = index_of(events, "finish");
    ASSERT_GE(finish, 0);
    EXPECT_EQ(finish, static_cast<int>(events.size()) - 1) << "nothing starts after the wait begins";
    std::set<std::string> started;
    for (int i = 0; i < finish; ++i)
      if (events[i].rfind("start ", 0) == 0) {
        EXPECT_TRUE(started.insert(events[i]).second) << events[i];
      }
    EXPECT_EQ(static_cast<int>(started.size()), buckets) << "accum " << accum;
    // The head (untied: the last parameter, bucket 0) is reported first and sent at
    // once; the embedding (parameters from 0) is reported last.
    const int first_start = index_of(events, "start 0");
    const ParamId P = trainer.model().params().size();
    EXPECT_EQ(first_start, 1) << events[0];
    EXPECT_EQ(events[0], "ready " + std::to_string(P - 1) + " " + std::to_string(P));
    int embedding = -1;
    for (int i = 0; i < finish; ++i)
      if (events[i].rfind("ready 0 ", 0) == 0) embedding = i;
    ASSERT_GT(embedding, first_start);
    EXPECT_GT(embedding - first_start, buckets / 2) << "most buckets started before the embedding's gradient";
    // Start B follows the ready that completed it: never before its parameters.
    events.clear();
    trainer.train_step(1);
    EXPECT_EQ(static_cast<int>(std::count_if(events.begin(), events.end(),
                                             [](const std::string& e) { return e.rfind("start", 0) == 0; })),
              buckets)
        << "every step starts each bucket once";
  }
}

}  // namespace
}  // namespace sy
