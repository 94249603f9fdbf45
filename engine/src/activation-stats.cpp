#include "activation-stats.h"

namespace glm {

void ActivationStats::enroll(const Tensor& t, const std::string& name) {
  if (!t.data || t.rows == 0) return;  // held by another node, or absent
  index_[&t] = entries_.size();
  entries_.push_back({name, t.cols, std::vector<double>(static_cast<size_t>(t.cols), 0.0), 0});
}

ActivationStats::ActivationStats(const Weights& w) {
  for (size_t l = 0; l < w.layers.size(); l++) {
    const LayerWeights& L = w.layers[l];
    const std::string b = "blk." + std::to_string(l) + ".";
    enroll(L.wq, b + "attn_q.weight");
    enroll(L.wk, b + "attn_k.weight");
    enroll(L.wv, b + "attn_v.weight");
    enroll(L.wo, b + "attn_output.weight");
    if (L.experts.empty()) {
      enroll(L.dense.gate, b + "ffn_gate.weight");
      enroll(L.dense.up, b + "ffn_up.weight");
      enroll(L.dense.down, b + "ffn_down.weight");
      continue;
    }
    for (size_t e = 0; e < L.experts.size(); e++) {
      const std::string n = "." + std::to_string(e) + ".weight";
      enroll(L.experts[e].gate, b + "ffn_gate" + n);
      enroll(L.experts[e].up, b + "ffn_up" + n);
      enroll(L.experts[e].down, b + "ffn_down" + n);
    }
    if (L.hasShared) {
      enroll(L.shared.gate, b + "ffn_gate_shexp.weight");
      enroll(L.shared.up, b + "ffn_up_shexp.weight");
      enroll(L.shared.down, b + "ffn_down_shexp.weight");
    }
  }
  enroll(w.output, "output.weight");
}

void ActivationStats::add(const Tensor& w, const float* x, int n) {
  const auto found = index_.find(&w);
  if (found == index_.end()) return;
  Entry& e = entries_[found->second];
  const size_t cols = static_cast<size_t>(e.cols);
  for (int t = 0; t < n; t++) {
    const float* row = x + static_cast<size_t>(t) * cols;
    for (size_t j = 0; j < cols; j++) e.sumSquares[j] += static_cast<double>(row[j]) * row[j];
  }
  e.tokens += static_cast<uint64_t>(n);
}

}  // namespace glm
