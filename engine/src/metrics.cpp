#include "metrics.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace glm {

std::vector<ChunkNll> chunkPerplexity(Session& session, const std::vector<int32_t>& ids, int contextLength) {
  if (contextLength < 2) throw std::invalid_argument("context length must be at least 2 tokens");
  if (ids.size() < 2) throw std::invalid_argument("at least 2 tokens are needed to measure a prediction");
  std::vector<ChunkNll> chunks;
  std::vector<float> logits;
  for (size_t start = 0; start + 1 < ids.size(); start += contextLength) {
    const int n = static_cast<int>(std::min<size_t>(contextLength, ids.size() - start));
    if (n < 2) break;
    const size_t vocab = static_cast<size_t>(session.vocabSize());
    logits.resize(n * vocab);
    session.reset();
    session.evaluate(ids.data() + start, n, logits.data(), true);
    double nll = 0.0;
    for (int t = 0; t + 1 < n; t++) {
      const float* row = logits.data() + t * vocab;
      const double max = *std::max_element(row, row + vocab);
      double sum = 0.0;
      for (size_t i = 0; i < vocab; i++) sum += std::exp(static_cast<double>(row[i]) - max);
      nll += max + std::log(sum) - row[ids[start + t + 1]];
    }
    chunks.push_back({static_cast<int>(start), n, nll / (n - 1)});
  }
  return chunks;
}

}  // namespace glm
