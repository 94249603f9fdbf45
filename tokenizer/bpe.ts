/**
 * The BPE model: a word's symbols (its characters, or with byte-level words its UTF-8 bytes) are merged
 * pairwise, always the pair of lowest merge rank first and, among equal ranks, the left-most, until no
 * pair merges. Results are cached per word.
 */
import { BYTE_TO_CHAR, toByteLevel } from './byte-level.js';

export interface BpeSpec {
  readonly type: 'BPE';
  /** Token string of every id (undefined where the model has no token). */
  readonly tokens: readonly (string | undefined)[];
  /** Merges in rank order, as (left id, right id, merged id) triples. */
  readonly merges: Uint32Array;
  readonly unkToken: string | null;
  readonly continuingSubwordPrefix: string | null;
  readonly endOfWordSuffix: string | null;
  readonly fuseUnk: boolean;
  readonly byteFallback: boolean;
  readonly ignoreMerges: boolean;
}

/** Open-addressing hash map from an id pair to its merge rank. */
class PairRanks {
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  private readonly rank: Int32Array;
  private readonly mask: number;

  constructor(merges: Uint32Array) {
    const count = merges.length / 3;
    let capacity = 16;
    while (capacity < count * 2) capacity *= 2;
    this.left = new Int32Array(capacity).fill(-1);
    this.right = new Int32Array(capacity);
    this.rank = new Int32Array(capacity);
    this.mask = capacity - 1;
    // a later duplicate of a pair overrides the earlier rank, as the Rust library's map does
    for (let r = 0; r < count; r++) this.set(merges[3 * r]!, merges[3 * r + 1]!, r);
  }

  private slot(a: number, b: number): number {
    return (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77)) & this.mask;
  }

  private set(a: number, b: number, r: number): void {
    let i = this.slot(a, b);
    for (;;) {
      const l = this.left[i]!;
      if (l === -1 || (l === a && this.right[i] === b)) {
        this.left[i] = a;
        this.right[i] = b;
        this.rank[i] = r;
        return;
      }
      i = (i + 1) & this.mask;
    }
  }

  /** The rank of merging (a, b), or -1. */
  get(a: number, b: number): number {
    let i = this.slot(a, b);
    for (;;) {
      const l = this.left[i]!;
      if (l === -1) return -1;
      if (l === a && this.right[i] === b) return this.rank[i]!;
      i = (i + 1) & this.mask;
    }
  }
}

/** Words above this length are not cached (as in the Rust library). */
const MAX_CACHED_WORD = 256;
const CACHE_CAPACITY = 100_000;
/** Words with more symbols than this merge with a heap instead of repeated scans. */
const SCAN_LIMIT = 48;

export class BpeModel {
  readonly vocab: Map<string, number>;
  private readonly pairs: PairRanks;
  private readonly merged: Uint32Array;
  private readonly byteIds: Int32Array;
  private readonly unkId: number;
  private readonly plain: boolean;
  private cache = new Map<string, number[]>();
  private readonly utf8 = new TextEncoder();
  private bytes = new Uint8Array(1024);

  constructor(readonly spec: BpeSpec) {
    const vocab = new Map<string, number>();
    spec.tokens.forEach((token, id) => {
      if (token !== undefined) vocab.set(token, id);
    });
    this.vocab = vocab;
    this.pairs = new PairRanks(spec.merges);
    this.merged = spec.merges;
    this.byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) this.byteIds[b] = vocab.get(BYTE_TO_CHAR[b]!) ?? -1;
    this.unkId = spec.unkToken === null ? -1 : (vocab.get(spec.unkToken) ?? -2);
    // the fast path applies when nothing but the characters themselves decides the initial symbols
    this.plain = !spec.continuingSubwordPrefix && !spec.endOfWordSuffix && spec.unkToken === null && !spec.byteFallback;
  }

  /** Token ids of one word; `byteLevel`: the word is plain text still to be spelled in byte characters. */
  tokenize(word: string, byteLevel: boolean): readonly number[] {
    if (word.length === 0) return [];
    const hit = this.cache.get(word);
    if (hit !== undefined) return hit;
    const ids = this.tokenizeUncached(word, byteLevel);
    if (word.length < MAX_CACHED_WORD) {
      if (this.cache.size >= CACHE_CAPACITY) this.cache = new Map();
      this.cache.set(word, ids);
    }
    return ids;
  }

  /** Forgets the cached words (the results never change; this only frees memory). */
  clearCache(): void {
    this.cache = new Map();
  }

  private tokenizeUncached(word: string, byteLevel: boolean): number[] {
    if (this.spec.ignoreMerges) {
      const whole = this.vocab.get(byteLevel ? toByteLevel(word) : word);
      if (whole !== undefined) return [whole];
    }
    let symbols: number[];
    if (byteLevel && this.plain) {
      if (this.bytes.length < word.length * 3) this.bytes = new Uint8Array(word.length * 3 + 64);
      const n = this.utf8.encodeInto(word, this.bytes).written;
      symbols = [];
      for (let i = 0; i < n; i++) {
        const id = this.byteIds[this.bytes[i]!]!;
        if (id >= 0) symbols.push(id); // a byte without a token is dropped, as in the Rust library
      }
    } else {
      symbols = this.initialSymbols(byteLevel ? toByteLevel(word) : word);
    }
    return symbols.length <= SCAN_LIMIT ? this.mergeByScan(symbols) : this.mergeByHeap(symbols);
  }

  /** The Rust library's `merge_word` before merging: characters, prefixes/suffix, byte fallback, unknown tokens. */
  private initialSymbols(word: string): number[] {
    const { continuingSubwordPrefix: prefix, endOfWordSuffix: suffix, byteFallback, fuseUnk } = this.spec;
    const chars = Array.from(word);
    const out: number[] = [];
    let pendingUnk = false;
    chars.forEach((ch, i) => {
      let s = ch;
      if (i > 0 && prefix) s = prefix + s;
      if (i === chars.length - 1 && suffix) s = s + suffix;
      const id = this.vocab.get(s);
      if (id !== undefined) {
        if (pendingUnk) out.push(this.unkId);
        pendingUnk = false;
        out.push(id);
        return;
      }
      if (byteFallback) {
        const ids = Array.from(this.utf8.encode(s), (b) => this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`));
        if (ids.every((x) => x !== undefined)) {
          // (a pending unknown token stays pending, as in the Rust library)
          out.push(...(ids as number[]));
          return;
        }
      }
      if (this.unkId !== -1) {
        if (this.unkId === -2) throw new Error(`BPE unk_token ${JSON.stringify(this.spec.unkToken)} is not in the vocabulary`);
        if (pendingUnk && !fuseUnk) out.push(this.unkId);
        pendingUnk = true;
      }
    });
    if (pendingUnk) out.push(this.unkId);
    return out;
  }

  private mergeByScan(symbols: number[]): number[] {
    const pairs = this.pairs;
    const n = symbols.length;
    if (n < 2) return symbols;
    const ranks: number[] = new Array<number>(n - 1);
    for (let i = 0; i + 1 < n; i++) ranks[i] = pairs.get(symbols[i]!, symbols[i + 1]!);
    for (;;) {
      let best = -1;
      let bestRank = 0x7fffffff;
      for (let i = 0; i < ranks.length; i++) {
        const r = ranks[i]!;
        if (r >= 0 && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) return symbols;
      const id = this.merged[3 * bestRank + 2]!;
      symbols[best] = id;
      symbols.splice(best + 1, 1);
      ranks.splice(best, 1);
      if (best > 0) ranks[best - 1] = pairs.get(symbols[best - 1]!, id);
      if (best < ranks.length) ranks[best] = pairs.get(id, symbols[best + 1]!);
    }
  }

  /** The Rust library's algorithm: a linked list of symbols and a min-heap of (rank, position). */
  private mergeByHeap(symbols: number[]): number[] {
    const n = symbols.length;
    const pairs = this.pairs;
    const sym = Int32Array.from(symbols);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    // heap of keys rank * 2^26 + position (ranks and positions both below 2^26)
    const POS = 67108864;
    if (n >= POS) throw new Error(`BPE word of ${n} symbols is too long`);
    const heap: number[] = [];
    const push = (key: number): void => {
      let i = heap.length;
      heap.push(key);
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (heap[parent]! <= key) break;
        heap[i] = heap[parent]!;
        i = parent;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const top = heap[0]!;
      const last = heap.pop()!;
      if (heap.length > 0) {
        let i = 0;
        const size = heap.length;
        for (;;) {
          const l = 2 * i + 1;
          if (l >= size) break;
          const r = l + 1;
          const child = r < size && heap[r]! < heap[l]! ? r : l;
          if (heap[child]! >= last) break;
          heap[i] = heap[child]!;
          i = child;
        }
        heap[i] = last;
      }
      return top;
    };
    for (let i = 0; i + 1 < n; i++) {
      const r = pairs.get(sym[i]!, sym[i + 1]!);
      if (r >= 0) push(r * POS + i);
    }
    while (heap.length > 0) {
      const key = pop();
      const rank = Math.floor(key / POS);
      const pos = key - rank * POS;
      if (!alive[pos]) continue;
      const right = next[pos]!;
      if (right < 0) continue;
      if (pairs.get(sym[pos]!, sym[right]!) !== rank) continue; // stale entry
      const id = this.merged[3 * rank + 2]!;
      sym[pos] = id;
      alive[right] = 0;
      const after = next[right]!;
      next[pos] = after;
      if (after >= 0) prev[after] = pos;
      const before = prev[pos]!;
      if (before >= 0) {
        const r = pairs.get(sym[before]!, id);
        if (r >= 0) push(r * POS + before);
      }
      if (after >= 0) {
        const r = pairs.get(id, sym[after]!);
        if (r >= 0) push(r * POS + pos);
      }
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
    return out;
  }
}
