/**
 * An independent float64 forward pass of the GLM family, written straight from the architecture spec
 * (shared/specs/glm-architectures.md section 3), reading its weights from a .m file. It is the yardstick
 * for llama.cpp (through the GGUF export) and for the engine: all three must agree on the log-probs of
 * every position.
 *
 *  - RMSNorm: y = w * x / sqrt(mean(x^2) + eps).
 *  - Attention: q/k/v projections with optional biases, optional per-head q/k RMSNorm (after the bias,
 *    before RoPE), RoPE on the first rope_dim dims of every head (interleaved pairs (2i, 2i+1) for
 *    glm/glm4, half-split pairs (i, i + rope_dim/2) for glm4moe; angle = pos * theta^(-2i/rope_dim)),
 *    causal softmax(q k^T / sqrt(head_dim)) with GQA (query head h reads kv head h / (n_heads/n_kv_heads)),
 *    then o_proj (no bias).
 *  - Layers: glm: x += Attn(norm(x)); x += MLP(norm(x)). glm4 (sandwich): x += norm(Attn(norm(x)));
 *    x += norm(MLP(norm(x))). glm4moe: as glm, the FFN being the dense MLP below first_dense_layers and
 *    the MoE block after.
 *  - MLP: down(silu(gate x) * up x).
 *  - MoE: s = sigmoid(router x); experts chosen by top-k of s + correction bias (group-limited when
 *    n_group > 1: groups ranked by the sum of their two best scores, the best topk_group kept); weights
 *    = the unbiased s of the chosen experts, normalised to sum 1 when norm_topk_prob, times
 *    routed_scaling_factor; plus the shared expert with weight 1.
 *  - logits = output(norm(x)); log-softmax in float64.
 *  - MTP (glm4moe files with the MTP section): see Forward.mtp.
 *
 * With `activations: 'ggml'` it also applies the rounding that ggml's CPU backend applies to the input of
 * every matrix product with non-f32 weights: Q8_0 blocks (d = fp16(amax / 127), q = round(x / d)) before
 * q40 / q80 matrices, fp16 before f16 matrices; the f32 router and the embedding are never rounded. That
 * is what a comparison of quantized files against llama.cpp (or an engine doing the same) needs.
 */
import { WeightType } from '../converter/dtypes.js';
import { ArchType, RopeStyle, type ModelHeader } from '../converter/model-header.js';
import { readModelFile, readTensor, type ModelFile } from '../converter/model-file.js';
import { isMoeLayer } from '../converter/model-layout.js';
import { native } from '../engine/native.js';

export interface ReferenceOptions {
  /** 'exact' (default): float64 throughout. 'ggml': round matmul inputs as ggml's CPU backend does (see above). */
  activations?: 'exact' | 'ggml';
  /**
   * Header fields to use instead of the file's (weights unchanged): for negative controls that show a
   * comparison catches a wrong convention (rope style, scaling factor, ...).
   */
  overrides?: Partial<ModelHeader>;
}

interface Matrix {
  rows: number;
  cols: number;
  data: Float32Array;
  type: WeightType;
}

class Weights {
  private readonly cache = new Map<string, Float32Array>();
  constructor(readonly model: ModelFile) {}

  async load(): Promise<void> {
    for (const t of this.model.tensors) this.cache.set(t.name, await readTensor(this.model, t.name));
  }

  vector(name: string): Float32Array {
    const v = this.cache.get(name);
    if (!v) throw new Error(`${this.model.path}: no tensor ${name}`);
    return v;
  }

  has(name: string): boolean {
    return this.cache.has(name);
  }

  matrix(name: string): Matrix {
    const spec = this.model.tensors.find((t) => t.name === name);
    if (!spec || spec.shape.length !== 2) throw new Error(`${this.model.path}: no matrix ${name}`);
    return { rows: spec.shape[0]!, cols: spec.shape[1]!, data: this.vector(name), type: spec.type };
  }
}

type Vec = Float64Array;

function rmsNorm(x: Vec, w: Float32Array, eps: number): Vec {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = w[i]! * x[i]! * scale;
  return out;
}

const silu = (v: number): number => v / (1 + Math.exp(-v));
const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/** fp16 rounding of a value (through the native encoder's float32 -> half conversion). */
function toF16(v: number): number {
  const engine = native();
  return engine.f16ToF32(engine.f32ToF16(Math.fround(v)));
}

/** ggml's quantize_row_q8_0 followed by dequantization, block by block. */
function roundQ80(x: Vec): Vec {
  const out = new Float64Array(x.length);
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let i = b; i < b + 32; i++) amax = Math.max(amax, Math.abs(Math.fround(x[i]!)));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const dh = toF16(d);
    for (let i = b; i < b + 32; i++) {
      const v = Math.fround(Math.fround(x[i]!) * id);
      // round half to even, as the AVX path (_mm256_round_ps, nearest) does
      const r = Math.round(v);
      const q = Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
      out[i] = q * dh;
    }
  }
  return out;
}

class Forward {
  constructor(
    private readonly w: Weights,
    private readonly h: ModelHeader,
    private readonly ggml: boolean,
  ) {}

  private input(x: Vec, type: WeightType): Vec {
    if (!this.ggml || type === WeightType.F32) return x;
    if (type === WeightType.F16) return x.map(toF16);
    return roundQ80(x);
  }

  /** y = W x (+ b), W [rows, cols] row-major. */
  matvec(name: string, x: Vec, bias?: string): Vec {
    const m = this.w.matrix(name);
    if (m.cols !== x.length) throw new Error(`${name}: ${m.cols} columns, input of ${x.length}`);
    const xin = this.input(x, m.type);
    const y = new Float64Array(m.rows);
    for (let r = 0; r < m.rows; r++) {
      let s = 0;
      const row = r * m.cols;
      for (let c = 0; c < m.cols; c++) s += m.data[row + c]! * xin[c]!;
      y[r] = s;
    }
    if (bias && this.w.has(bias)) {
      const b = this.w.vector(bias);
      for (let r = 0; r < m.rows; r++) y[r]! += b[r]!;
    }
    return y;
  }

  mlp(x: Vec, gate: string, up: string, down: string): Vec {
    const g = this.matvec(gate, x);
    const u = this.matvec(up, x);
    const a = new Float64Array(g.length);
    for (let i = 0; i < g.length; i++) a[i] = silu(g[i]!) * u[i]!;
    return this.matvec(down, a);
  }

  moe(x: Vec, b: string): Vec {
    const h = this.h;
    const E = h.nExperts;
    const router = this.matvec(`${b}ffn_gate_inp.weight`, x);
    const bias = this.w.vector(`${b}exp_probs_b.bias`);
    const s = Array.from(router, sigmoid);
    const choice = s.map((v, e) => v + bias[e]!);
    if (h.nExpertGroups > 1) {
      const per = E / h.nExpertGroups;
      const groupScore = Array.from({ length: h.nExpertGroups }, (_, g) => {
        const sorted = choice.slice(g * per, (g + 1) * per).sort((p, q) => q - p);
        return sorted[0]! + (sorted[1] ?? 0);
      });
      const kept = groupScore.map((v, g) => [v, g] as const).sort((p, q) => q[0] - p[0]).slice(0, h.topkGroups).map(([, g]) => g);
      for (let e = 0; e < E; e++) if (!kept.includes(Math.floor(e / per))) choice[e] = -Infinity;
    }
    const chosen = choice.map((v, e) => [v, e] as const).sort((p, q) => q[0] - p[0]).slice(0, h.nActiveExperts).map(([, e]) => e);
    let weights = chosen.map((e) => s[e]!);
    if (h.normTopkProb) {
      const sum = weights.reduce((p, q) => p + q, 0);
      weights = weights.map((v) => v / sum);
    }
    weights = weights.map((v) => v * h.routedScalingFactor);
    const out = new Float64Array(h.dim);
    chosen.forEach((e, j) => {
      const y = this.mlp(x, `${b}ffn_gate.${e}.weight`, `${b}ffn_up.${e}.weight`, `${b}ffn_down.${e}.weight`);
      for (let i = 0; i < out.length; i++) out[i]! += weights[j]! * y[i]!;
    });
    if (h.nSharedExperts > 0) {
      const y = this.mlp(x, `${b}ffn_gate_shexp.weight`, `${b}ffn_up_shexp.weight`, `${b}ffn_down_shexp.weight`);
      for (let i = 0; i < out.length; i++) out[i]! += y[i]!;
    }
    return out;
  }

  /** Rotates the first rope_dim dims of each head of `v` (n heads of head_dim) in place. */
  rope(v: Vec, heads: number, pos: number): void {
    const { headDim, ropeDim, ropeTheta, ropeStyle } = this.h;
    const half = ropeDim / 2;
    for (let hd = 0; hd < heads; hd++) {
      const o = hd * headDim;
      for (let i = 0; i < half; i++) {
        const angle = pos * Math.pow(ropeTheta, (-2 * i) / ropeDim);
        const cos = Math.cos(angle);
        const sin = Math.sin(angle);
        const [a, b] = ropeStyle === RopeStyle.HalfSplit ? [o + i, o + i + half] : [o + 2 * i, o + 2 * i + 1];
        const x0 = v[a]!;
        const x1 = v[b]!;
        v[a] = x0 * cos - x1 * sin;
        v[b] = x1 * cos + x0 * sin;
      }
    }
  }

  headNorm(v: Vec, heads: number, weight: string): void {
    const w = this.w.vector(weight);
    const d = this.h.headDim;
    for (let hd = 0; hd < heads; hd++) v.set(rmsNorm(v.subarray(hd * d, (hd + 1) * d), w, this.h.normEpsilon), hd * d);
  }

  /** Embedding rows of `tokens`, in float64. */
  embed(tokens: readonly number[]): Vec[] {
    const h = this.h;
    const embedding = this.w.vector('token_embd.weight');
    return tokens.map((t) => {
      if (!Number.isInteger(t) || t < 0 || t >= h.vocabSize) throw new Error(`token ${t} outside the vocabulary of ${h.vocabSize}`);
      return Float64Array.from(embedding.subarray(t * h.dim, (t + 1) * h.dim));
    });
  }

  /** One decoder layer (tensors blk.l.*) over the residual rows xs at positions 0, 1, ..., in place. */
  layer(xs: Vec[], l: number): void {
    const h = this.h;
    const d = h.headDim;
    const group = h.nHeads / h.nKvHeads;
    const sandwich = h.archType === ArchType.GLM4;
    const b = `blk.${l}.`;
    const keys: Vec[] = [];
    const values: Vec[] = [];
    const queries: Vec[] = [];
    xs.forEach((x, pos) => {
      const a = rmsNorm(x, this.w.vector(`${b}attn_norm.weight`), h.normEpsilon);
      const q = this.matvec(`${b}attn_q.weight`, a, `${b}attn_q.bias`);
      const k = this.matvec(`${b}attn_k.weight`, a, `${b}attn_k.bias`);
      const v = this.matvec(`${b}attn_v.weight`, a, `${b}attn_v.bias`);
      if (h.qkNorm) {
        this.headNorm(q, h.nHeads, `${b}attn_q_norm.weight`);
        this.headNorm(k, h.nKvHeads, `${b}attn_k_norm.weight`);
      }
      this.rope(q, h.nHeads, pos);
      this.rope(k, h.nKvHeads, pos);
      queries.push(q);
      keys.push(k);
      values.push(v);
    });
    xs.forEach((x, pos) => {
      const attn = new Float64Array(h.nHeads * d);
      for (let hd = 0; hd < h.nHeads; hd++) {
        const kv = Math.floor(hd / group) * d;
        const q = queries[pos]!.subarray(hd * d, (hd + 1) * d);
        const scores = keys.slice(0, pos + 1).map((k) => {
          let s = 0;
          for (let i = 0; i < d; i++) s += q[i]! * k[kv + i]!;
          return s / Math.sqrt(d);
        });
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const sum = exps.reduce((p, q2) => p + q2, 0);
        exps.forEach((e, j) => {
          const v = values[j]!;
          for (let i = 0; i < d; i++) attn[hd * d + i]! += (e / sum) * v[kv + i]!;
        });
      }
      let o = this.matvec(`${b}attn_output.weight`, attn);
      if (sandwich) o = rmsNorm(o, this.w.vector(`${b}post_attention_norm.weight`), h.normEpsilon);
      for (let i = 0; i < h.dim; i++) x[i]! += o[i]!;
    });
    // Attention reads every position's keys first, so the FFN runs after the whole sequence's attention.
    for (const x of xs) {
      const n = rmsNorm(x, this.w.vector(`${b}ffn_norm.weight`), h.normEpsilon);
      let f = isMoeLayer(h, l) ? this.moe(n, b) : this.mlp(n, `${b}ffn_gate.weight`, `${b}ffn_up.weight`, `${b}ffn_down.weight`);
      if (sandwich) f = rmsNorm(f, this.w.vector(`${b}post_ffw_norm.weight`), h.normEpsilon);
      for (let i = 0; i < h.dim; i++) x[i]! += f[i]!;
    }
  }

  /** The final-normed hidden state of every position. */
  hidden(tokens: readonly number[]): Vec[] {
    const xs = this.embed(tokens);
    for (let l = 0; l < this.h.nLayers; l++) this.layer(xs, l);
    return xs.map((x) => rmsNorm(x, this.w.vector('output_norm.weight'), this.h.normEpsilon));
  }

  run(tokens: readonly number[]): number[][] {
    return this.hidden(tokens).map((x) => Array.from(this.matvec('output.weight', x)));
  }

  /**
   * GLM-4.5's MTP (next-n) layer L = n_layers, as DeepSeek-V3 and GLM-4.5 define it: at position i,
   * u = eh_proj([enorm(embed(token i + 1)); hnorm(main hidden state at i)]), the decoder layer blk.L over
   * the u rows at positions 0, 1, ..., then logits = output(shared_head_norm(u)): the distribution of
   * token i + 2. Positions 0 .. n-2.
   */
  mtp(tokens: readonly number[]): number[][] {
    const h = this.h;
    const L = `blk.${h.nLayers}.nextn.`;
    const hidden = this.hidden(tokens);
    const next = this.embed(tokens.slice(1));
    const us = next.map((e, i) => {
      const joined = new Float64Array(2 * h.dim);
      joined.set(rmsNorm(e, this.w.vector(`${L}enorm.weight`), h.normEpsilon), 0);
      joined.set(rmsNorm(hidden[i]!, this.w.vector(`${L}hnorm.weight`), h.normEpsilon), h.dim);
      return this.matvec(`${L}eh_proj.weight`, joined);
    });
    this.layer(us, h.nLayers);
    return us.map((u) => Array.from(this.matvec('output.weight', rmsNorm(u, this.w.vector(`${L}shared_head_norm.weight`), h.normEpsilon))));
  }
}

export function logSoftmax(logits: readonly number[]): number[] {
  const max = Math.max(...logits);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return logits.map((v) => v - lse);
}

/** Logits [position][vocab] of the .m model at `modelPath` for `tokens` (positions 0, 1, ...). */
export async function referenceLogits(modelPath: string, tokens: readonly number[], options: ReferenceOptions = {}): Promise<number[][]> {
  const model = await readModelFile(modelPath);
  const weights = new Weights(model);
  await weights.load();
  return new Forward(weights, { ...model.header, ...options.overrides }, options.activations === 'ggml').run(tokens);
}

/** For each position i < n - 1, the MTP layer's log p(token i + 2 | tokens[0..i + 1]) (the file needs its MTP section). */
export async function referenceMtpLogprobs(modelPath: string, tokens: readonly number[], options: ReferenceOptions = {}): Promise<number[][]> {
  const model = await readModelFile(modelPath);
  const weights = new Weights(model);
  await weights.load();
  return new Forward(weights, { ...model.header, ...options.overrides }, options.activations === 'ggml').mtp(tokens).map(logSoftmax);
}

/** For each position i, log p(next token | tokens[0..i]) over the whole vocabulary, in float64. */
export async function referenceLogprobs(modelPath: string, tokens: readonly number[], options: ReferenceOptions = {}): Promise<number[][]> {
  return (await referenceLogits(modelPath, tokens, options)).map(logSoftmax);
}
