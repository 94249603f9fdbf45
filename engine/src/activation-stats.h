// Importance-matrix collection (glm-dllama imatrix): for every quantizable weight matrix, the sum of
// squares of each input column's activations and the number of token rows that went through it. The
// matmul sees the f32 input before its q80 activation quantization; a routed expert sees only the
// tokens routed to it, so each expert gets its own sums.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "model.h"

namespace glm {

class ActivationStats {
 public:
  struct Entry {
    std::string name;  // the .m tensor name (docs/model-format.md)
    int cols = 0;
    std::vector<double> sumSquares;
    uint64_t tokens = 0;
  };

  // Registers every matrix of the layers (attention, dense FFN, experts, shared expert) that `w`
  // holds, and the output head; the f32 router is not collected (it is never quantized).
  explicit ActivationStats(const Weights& w);

  // Adds n input rows (w.cols each) of a matmul with w; matrices not registered are ignored.
  void add(const Tensor& w, const float* x, int n);

  const std::vector<Entry>& entries() const { return entries_; }

 private:
  void enroll(const Tensor& t, const std::string& name);
  std::unordered_map<const Tensor*, size_t> index_;
  std::vector<Entry> entries_;
};

}  // namespace glm
