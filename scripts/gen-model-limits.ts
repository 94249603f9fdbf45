/** Writes engine/src/model-limits.h from converter/model-header.ts (see scripts/model-limits.ts). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../engine/native.js';
import { MODEL_LIMITS_HEADER, modelLimitsHeader } from './model-limits.js';

writeFileSync(join(packageRoot(), MODEL_LIMITS_HEADER), modelLimitsHeader());
console.log(`wrote ${MODEL_LIMITS_HEADER}`);
