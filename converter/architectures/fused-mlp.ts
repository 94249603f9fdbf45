/** The fused [gate; up] MLP of ChatGLM, Glm and Glm4 checkpoints: gate is the first half of the rows. */
import { whole, type ModelParams, type TensorSource } from './architecture.js';

export function fusedGateUpSource(
  prefix: string,
  rest: string,
  p: ModelParams,
  names: { gateUp: string; down: string },
): TensorSource | undefined {
  const gateUp = { tensor: `${prefix}${names.gateUp}.weight`, shape: [2 * p.hiddenDim, p.dim] };
  switch (rest) {
    case 'ffn_gate.weight':
      return { ...gateUp, rowStart: 0 };
    case 'ffn_up.weight':
      return { ...gateUp, rowStart: p.hiddenDim };
    case 'ffn_down.weight':
      return whole(`${prefix}${names.down}.weight`, [p.dim, p.hiddenDim]);
    default:
      return undefined;
  }
}
