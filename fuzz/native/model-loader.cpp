// libFuzzer target: the .m loader (glm::Model) on arbitrary file bytes, through a memfd so that the
// loader maps it exactly as it maps a file. Properties besides "no crash, no sanitizer report":
// a refusal is a ModelError (never bad_alloc, logic_error or anything else); an accepted file's
// header pairs each equal the value the parsed header re-encodes to (no field read loosely or
// dropped), the canonical re-encoding parses to the same header, and the tensors tile the file
// from the end of the header to its last byte.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "model-limits.h"
#include "model.h"

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "property violated: %s\n", what);
  std::abort();
}

int32_t bits(float f) {
  int32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// The value of every known key as the parsed header holds it (the canonical form converter/model-header.ts writes).
std::map<int32_t, int32_t> reencode(const glm::ModelHeader& h) {
  return {{0, h.version}, {1, static_cast<int32_t>(h.arch)}, {11, h.hiddenAct}, {2, h.dim}, {3, h.hiddenDim}, {4, h.nLayers},
          {5, h.nHeads}, {6, h.nKvHeads}, {13, static_cast<int32_t>(h.weightType)}, {10, h.maxSeqLen}, {9, h.vocabSize},
          {7, h.nExperts}, {8, h.nActiveExperts}, {18, static_cast<int32_t>(h.ropeStyle)}, {19, h.headDim}, {21, h.moeHiddenDim},
          {256, bits(h.ropeTheta)}, {257, bits(h.normEpsilon)}, {258, h.ropeDim}, {259, h.attentionBias}, {260, h.qkNorm},
          {261, h.nSharedExperts}, {262, h.firstDenseLayers}, {263, bits(h.routedScalingFactor)}, {264, h.normTopkProb},
          {265, h.nExpertGroups}, {266, h.topkGroups}, {267, static_cast<int32_t>(h.outputType)}, {300, h.mtpLayers}};
}

void checkTensor(const glm::Model& m, const glm::Tensor& t, const uint8_t*& next) {
  if (!t.data) return;
  const uint8_t* base = m.headerPairs() - 8;
  if (t.data != next) violated("a tensor does not start where the previous one ended");
  next = t.data + static_cast<size_t>(t.rows) * t.rowBytes();
  if (next > base + m.fileSize()) violated("a tensor runs past the mapped file");
}

void checkAccepted(const glm::Model& m) {
  const glm::ModelHeader& h = m.header();
  const std::map<int32_t, int32_t> canonical = reencode(h);
  if (canonical.size() != sizeof glm::kHeaderKeys / sizeof *glm::kHeaderKeys) violated("the re-encoder misses a header key");
  const uint8_t* pairs = m.headerPairs();
  for (size_t at = 0; at < m.headerPairBytes(); at += 8) {
    int32_t key, value;
    std::memcpy(&key, pairs + at, 4);
    std::memcpy(&value, pairs + at + 4, 4);
    const auto it = canonical.find(key);
    if (it == canonical.end() || it->second != value) violated("an accepted header pair differs from its re-encoding");
  }
  std::vector<uint8_t> again;
  for (const glm::HeaderKey& k : glm::kHeaderKeys) {
    const int32_t pair[2] = {k.id, canonical.at(k.id)};
    again.insert(again.end(), reinterpret_cast<const uint8_t*>(pair), reinterpret_cast<const uint8_t*>(pair) + 8);
  }
  if (reencode(glm::parseHeader(again.data(), again.size(), "the re-encoding")) != canonical) violated("the canonical re-encoding parses differently");

  const uint8_t* next = pairs + m.headerPairBytes();
  checkTensor(m, m.embedding, next);
  const auto checkLayer = [&](const glm::LayerWeights& L) {
    for (const glm::Tensor* t : {&L.attnNorm, &L.wq, &L.wk, &L.wv, &L.bq, &L.bk, &L.bv, &L.qNorm, &L.kNorm, &L.wo, &L.postAttnNorm, &L.ffnNorm}) checkTensor(m, *t, next);
    for (const glm::Tensor* t : {&L.dense.gate, &L.dense.up, &L.dense.down, &L.router, &L.routerBias}) checkTensor(m, *t, next);
    for (const glm::ExpertWeights& e : L.experts) for (const glm::Tensor* t : {&e.gate, &e.up, &e.down}) checkTensor(m, *t, next);
    for (const glm::Tensor* t : {&L.shared.gate, &L.shared.up, &L.shared.down}) checkTensor(m, *t, next);
    checkTensor(m, L.postFfnNorm, next);
  };
  for (const glm::LayerWeights& L : m.layers) checkLayer(L);
  checkTensor(m, m.outputNorm, next);
  checkTensor(m, m.output, next);
  if (h.mtpLayers > 0) {  // the optional MTP section after the head
    for (const glm::Tensor* t : {&m.mtp.enorm, &m.mtp.hnorm, &m.mtp.ehProj}) checkTensor(m, *t, next);
    checkLayer(m.mtp.layer);
    checkTensor(m, m.mtp.sharedHeadNorm, next);
  }
  if (next != pairs - 8 + m.fileSize()) violated("the tensors do not end at the end of the file");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("fuzz.m", 0);
  if (fd < 0 || ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) violated("memfd");
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    const glm::Model model(path);
    checkAccepted(model);
  } catch (const glm::ModelError&) {
    // a refusal naming the file: what bad input must get
  }
  return 0;
}
