// How a model is split over N nodes (tensor parallelism), computed identically by the root and every
// worker from the header alone: node k owns a range of query heads (with the KV heads they read,
// replicated where a KV head's group spans nodes), of dense FFN rows, of every expert's rows or of
// whole experts, and of vocabulary rows. Shares are as even as whole units allow (heads; 32-value
// blocks for quantized FFN columns), so N need not divide the dimensions. Norms, the router and its bias are replicated; the embedding
// stays on the root (node 0).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../model.h"

namespace glm {

// MoE split: every expert's rows sliced over all nodes, or whole experts placed on nodes.
enum class ExpertSplit : int32_t { Slice = 0, Place = 1 };

struct Range {
  int begin = 0, end = 0;
  int size() const { return end - begin; }
};

struct SlicePlan {
  int nodes = 1, index = 0;
  ExpertSplit experts = ExpertSplit::Slice;
  Range heads, kvHeads, ffn, expertRows, expertIds, shared, vocab;
};

class PlanError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws PlanError naming the dimension that cannot give every node a share.
SlicePlan planSlices(const ModelHeader& h, int nodes, int index, ExpertSplit experts);

// The node's view of the header: its own head, KV head, FFN, expert-row and vocabulary counts.
ModelHeader localHeader(const ModelHeader& h, const SlicePlan& plan);

// A rectangle of a full tensor: rows [row0, row0 + rows), columns [col0, col0 + cols).
struct Rect {
  int row0 = 0, rows = 0, col0 = 0, cols = 0;
  bool empty() const { return rows == 0 || cols == 0; }
};

// Calls fn(full tensor, its part on this node, the node's tensor to fill) for every tensor of the
// model in file order; `local` gets localHeader and the layer structure first. `full` may hold shapes
// only (no data), as on a worker that receives its slices.
void forEachSlice(const Weights& full, const SlicePlan& plan, Weights& local,
                  const std::function<void(const Tensor& full, const Rect& part, Tensor& mine)>& fn);

// Bytes of a rectangle of `t`, rows one after another.
size_t rectBytes(const Tensor& t, const Rect& r);

// One node's weights with the storage of the parts that are not views of a mapped file.
struct Shard {
  Weights weights;
  std::vector<std::unique_ptr<uint8_t[]>> storage;
  uint8_t* allocate(size_t bytes);
};

// The node's shard cut from a model mapped on this machine: row ranges are views of the file, column
// ranges are copied.
std::unique_ptr<Shard> cutShard(const Model& model, const SlicePlan& plan);

// Shapes of every tensor of a model with this header, without data.
Weights layoutOf(const ModelHeader& h);

}  // namespace glm
