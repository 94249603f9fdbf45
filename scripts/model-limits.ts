/**
 * engine/src/model-limits.h, the native loader's copy of the .m header keys (ids, names, defaults and
 * bounds), generated from HEADER_KEYS so that both readers refuse the same files. `npm run
 * gen:model-limits` writes it; test/model-limits.test.ts fails when the committed file is stale.
 */
import { HEADER_KEYS, MAX_HEADER_BYTES, f32Bits } from '../converter/model-header.js';

export const MODEL_LIMITS_HEADER = 'engine/src/model-limits.h';

export function modelLimitsHeader(): string {
  const rows = HEADER_KEYS.map((k) => {
    // An optional key that defaults to another field (sameAs) reads as -1 when absent.
    const absent = k.sameAs ? -1 : k.absent === undefined ? 0 : k.kind === 'f32' ? f32Bits(k.absent as number) : Number(k.absent);
    const [min, max] = k.range ?? [0, 0];
    return `    {${k.id}, "${k.name}", ${k.absent === undefined && !k.sameAs}, ${absent}, ${k.range !== undefined}, ${min}, ${max}},`;
  });
  return `// Generated from HEADER_KEYS in converter/model-header.ts by \`npm run gen:model-limits\`; do not edit.
// The .m header keys: id, name, whether required, the value when absent (float bits for floats), and the
// inclusive bounds of int and bool values. test/model-limits.test.ts checks that this file is fresh.
#pragma once
#include <cstddef>
#include <cstdint>

namespace glm {

struct HeaderKey {
  int32_t id;
  const char* name;
  bool required;
  int32_t absent;
  bool ranged;
  int32_t min, max;
};

inline constexpr HeaderKey kHeaderKeys[] = {
${rows.join('\n')}
};

inline constexpr size_t kMaxHeaderBytes = ${MAX_HEADER_BYTES};

}  // namespace glm
`;
}
