// The layer function of each architecture.
#include "graph.h"

namespace glm {

LayerFn layerFunction(ArchType arch) {
  switch (arch) {
    case ArchType::GLM:
      return glmLayer;
    case ArchType::GLM4:
      return glm4Layer;
    case ArchType::GLM4_MOE:
      return glm4MoeLayer;
  }
  return nullptr;
}

}  // namespace glm
