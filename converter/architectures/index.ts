/** The checkpoint architectures the converter knows, chosen by config.json `architectures`. */
import type { ConfigReader } from '../config.js';
import type { Architecture } from './architecture.js';
import { chatglm } from './chatglm.js';
import { glm } from './glm.js';
import { glm4 } from './glm4.js';
import { glm4moe } from './glm4moe.js';

export type { Architecture, ModelParams, TensorSource } from './architecture.js';
export const ARCHITECTURES: readonly Architecture[] = [chatglm, glm, glm4, glm4moe];

export function architectureOf(config: ConfigReader): Architecture {
  const declared = config.json.architectures;
  if (!Array.isArray(declared) || declared.length === 0 || !declared.every((a) => typeof a === 'string')) {
    config.fail('architectures', `expected a list of class names, got ${JSON.stringify(declared)}`);
  }
  for (const name of declared as string[]) {
    const arch = ARCHITECTURES.find((a) => a.hfArchitectures.includes(name));
    if (arch) return arch;
  }
  const supported = ARCHITECTURES.flatMap((a) => a.hfArchitectures).join(', ');
  return config.fail('architectures', `unknown architecture ${JSON.stringify(declared)}; supported: ${supported}`);
}
