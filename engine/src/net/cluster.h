// The root's side of a tensor-parallel run: connects to the workers, proves and checks the shared
// secret, sends each its slices (unless it maps the same model file itself), then drives every pass:
// the input rows out, the partial sums of each layer in and their sum back, the logits in. The root
// is node 0 and computes its own slice in between.
#pragma once
#include <condition_variable>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../graph/blocks.h"
#include "../model.h"
#include "protocol.h"
#include "slice.h"

namespace glm {

struct DistributedOptions {
  std::vector<std::string> workers;  // host:port, in node order 1..N-1
  FloatType sync = FloatType::Q80;   // partial sums on the wire: q80 (dim/32 x 34 bytes a row) or f32
  std::string secret;                // empty: no authentication
  ExpertSplit experts = ExpertSplit::Slice;
  int timeoutMs = 30000;             // longest wait for a worker's answer
};

struct NodeTraffic {
  uint64_t sent = 0, received = 0;
};

class Cluster : public Collective {
 public:
  // Throws PlanError when the node count does not fit the model, NetError or RemoteError when a
  // worker cannot be reached or refuses the handshake.
  Cluster(const Model& model, const DistributedOptions& options, int context, FloatType kvType);
  ~Cluster() override;

  int nodes() const { return static_cast<int>(plans_.size()); }
  const SlicePlan& plan(int node) const { return plans_[node]; }

  // Starts a pass on every worker: n input rows x at position pos; logits wanted for `count` rows from `first`.
  void begin(const float* x, int n, int pos, int first, int count);
  void allReduce(float* values, int n) override;
  // Fills the count x vocab logits from the root's vocabulary rows (`local`, count x its rows) and the workers'.
  void gather(const float* local, int count, float* logits);
  // Bytes each node has sent and received (node 0 is the root), frames other than heartbeats.
  std::vector<NodeTraffic> traffic() const;

 private:
  void connect(int node, const Endpoint& to, const Model& model, int context, FloatType kvType);
  void streamSlices(Link& link, const Model& model, const SlicePlan& plan);
  // Runs a step of the pass; the first failure closes every link (the workers go back to listening)
  // and every later pass reports it.
  template <typename F>
  void guarded(F step);
  void heartbeats();

  DistributedOptions options_;
  int dim_;
  int vocab_;
  std::vector<SlicePlan> plans_;
  std::vector<std::unique_ptr<Link>> links_;  // links_[i] is node i + 1
  std::vector<uint8_t> wire_;
  std::vector<float> scratch_;
  std::string failure_;
  std::mutex stopMutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  std::thread heartbeat_;
};

}  // namespace glm
