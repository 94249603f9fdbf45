// Perplexity on token ids, shared by the library (through the addon) and glm-engine.
#pragma once
#include <cstdint>
#include <vector>

#include "session.h"

namespace glm {

struct ChunkNll {
  int start = 0;   // index of the chunk's first id
  int tokens = 0;  // ids in the chunk
  double nll = 0;  // mean negative log-likelihood (nats) of its predicted ids
};

// Cuts ids into chunks of contextLength, evaluates each from an empty cache, and scores every id after a
// chunk's first. Throws std::invalid_argument for fewer than 2 ids or a context shorter than 2.
std::vector<ChunkNll> chunkPerplexity(Session& session, const std::vector<int32_t>& ids, int contextLength);

}  // namespace glm
