/**
 * Bytes a tensor-parallel decode step moves, by formula (docs/distributed.md): ours, as the engine's
 * protocol frames them, and distributed-llama's for the same shapes, for the benchmark to print side
 * by side and the tests to hold the measured counters to.
 */
import type { NodeTraffic, SyncType } from './index.js';

export interface TrafficShape {
  dim: number;
  nLayers: number;
  vocabSize: number;
}

/** Bytes of one row of `dim` values on the wire. */
export function syncRowBytes(dim: number, sync: SyncType): number {
  return sync === 'f32' ? 4 * dim : (dim / 32) * 34;
}

/** Vocabulary rows of node k: the even split in whole rows that the slice plan makes. */
export function vocabShare(vocab: number, nodes: number, k: number): number {
  return Math.floor((vocab * (k + 1)) / nodes) - Math.floor((vocab * k) / nodes);
}

const FRAME = 8 + 16; // frame header and the session's authentication tag
const FORWARD = 16; // position, token count, first logit row, logit rows

/** Bytes of one logit on the wire: f16 with q80 sync, f32 with f32 sync. */
export function logitBytes(sync: SyncType): number {
  return sync === 'f32' ? 4 : 2;
}

/**
 * Per generated token (one token per pass, its logits only), for node 0 (the root) then each worker.
 * Root -> worker: a Forward frame with the token's input row in f32, then the sum of the partials twice
 * per layer. Worker -> root: its partial twice per layer, then its vocabulary rows of logits.
 */
export function decodeTraffic(s: TrafficShape, nodes: number, sync: SyncType): NodeTraffic[] {
  if (nodes === 1) return [];
  const syncs = 2 * s.nLayers * (FRAME + syncRowBytes(s.dim, sync));
  const down = FRAME + FORWARD + 4 * s.dim + syncs;
  const workers = Array.from({ length: nodes - 1 }, (_, i) => ({ sent: syncs + FRAME + logitBytes(sync) * vocabShare(s.vocabSize, nodes, i + 1), received: down }));
  const root = { sent: (nodes - 1) * down, received: workers.reduce((sum, w) => sum + w.sent, 0) };
  return [root, ...workers];
}

/**
 * distributed-llama's bytes per generated token (its full mesh: every node sends its slice of each
 * layer's partial sums to every other node), for the same shapes; its Q80 row is our q80 row.
 */
export function dllamaDecodeTraffic(s: TrafficShape, nodes: number, sync: SyncType): NodeTraffic[] {
  if (nodes === 1) return [];
  const layers = (nodes - 1) * 2 * s.nLayers * syncRowBytes(s.dim, sync);
  const logits = (4 * s.vocabSize) / nodes;
  const root = { sent: (nodes - 1) * (8 + 4 * s.dim) + layers, received: layers + (nodes - 1) * logits };
  const worker = { sent: layers + logits, received: 8 + 4 * s.dim + layers };
  return [root, ...Array.from({ length: nodes - 1 }, () => ({ ...worker }))];
}
