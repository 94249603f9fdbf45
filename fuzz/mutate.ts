/**
 * Input generators for the TypeScript fuzz targets: mutations of valid seed inputs, because a parser
 * rejects random bytes at its first check while a valid file with one field changed reaches the deep code.
 * Two kinds: byte-level edits (for binary formats) and structure-aware edits of JSON documents.
 */
import fc from 'fast-check';

/** Values that sit on the edges parsers get wrong: sign bits, int32 wrap points, zero and one. */
const EDGE_U32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x10000004];

type ByteEdit =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set32'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'erase'; at: number; length: number }
  | { kind: 'truncate'; at: number };

const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set32' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(...EDGE_U32), fc.nat({ max: 0xffffffff })) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('erase' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

function applyByteEdit(input: Buffer, edit: ByteEdit): Buffer {
  if (input.length === 0) return edit.kind === 'insert' ? Buffer.from(edit.bytes) : input;
  const at = edit.at % input.length;
  switch (edit.kind) {
    case 'flip': {
      const out = Buffer.from(input);
      out[at] = out[at]! ^ (1 << edit.bit);
      return out;
    }
    case 'set32': {
      // Aligned to 4 so that header fields, which are 32-bit words, are hit whole.
      const aligned = Math.min(at - (at % 4), input.length - 4);
      if (aligned < 0) return input;
      const out = Buffer.from(input);
      out.writeUInt32LE(edit.value >>> 0, aligned);
      return out;
    }
    case 'insert':
      return Buffer.concat([input.subarray(0, at), edit.bytes, input.subarray(at)]);
    case 'erase':
      return Buffer.concat([input.subarray(0, at), input.subarray(Math.min(input.length, at + edit.length))]);
    case 'truncate':
      return input.subarray(0, at);
  }
}

/** One of the seeds with one to four byte edits; edits near the start (headers) are as likely as anywhere. */
export function mutatedBytes(seeds: readonly Buffer[], headerBytes = 256): fc.Arbitrary<Buffer> {
  const nearStart = byteEdit.map((e) => ({ ...e, at: e.at % headerBytes }));
  return fc
    .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(fc.oneof(byteEdit, nearStart), { minLength: 1, maxLength: 4 }))
    .map(([seed, edits]) => edits.reduce(applyByteEdit, seeds[seed]!));
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Values that type checks and range checks must refuse. */
const edgeJson: fc.Arbitrary<Json> = fc.constantFrom<Json>(
  -1, 0, 0.5, 2 ** 31, 2 ** 32 + 4, 2 ** 53, 1e308, -1e308, '', 'x', '0', null, true, [], {}, [1, 2], { a: 1 },
);

type JsonEdit = { kind: 'replace'; at: number; value: Json } | { kind: 'delete'; at: number } | { kind: 'add'; at: number; key: string; value: Json };

const jsonEdit: fc.Arbitrary<JsonEdit> = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), value: fc.oneof(edgeJson, fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('add' as const), at: fc.nat(), key: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__proto__', 'constructor', 'length')), value: edgeJson }),
);

/** Every container and value in `doc` as [parent, key] pairs, the root as [undefined, undefined]. */
function slots(doc: Json): [Json[] | Record<string, Json> | undefined, string | number | undefined][] {
  const out: [Json[] | Record<string, Json> | undefined, string | number | undefined][] = [[undefined, undefined]];
  const walk = (node: Json) => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => {
        out.push([node, i]);
        walk(child);
      });
    } else if (node !== null && typeof node === 'object') {
      for (const [key, child] of Object.entries(node)) {
        out.push([node, key]);
        walk(child);
      }
    }
  };
  walk(doc);
  return out;
}

function applyJsonEdit(doc: Json, edit: JsonEdit): Json {
  const all = slots(doc);
  const [parent, key] = all[edit.at % all.length]!;
  if (parent === undefined) return edit.kind === 'replace' ? edit.value : doc;
  const target = (parent as Record<string, Json>)[key as string];
  if (edit.kind === 'replace') (parent as Record<string, Json>)[key as string] = edit.value;
  else if (edit.kind === 'delete') {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key as string];
  } else if (target !== null && typeof target === 'object' && !Array.isArray(target)) {
    Object.defineProperty(target, edit.key, { value: edit.value, enumerable: true, writable: true, configurable: true });
  }
  return doc;
}

/** One of the seed documents (deep-copied) with one to four structural edits. */
export function mutatedJson(seeds: readonly unknown[]): fc.Arbitrary<unknown> {
  return fc
    .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(jsonEdit, { minLength: 1, maxLength: 4 }))
    .map(([seed, edits]) => edits.reduce(applyJsonEdit, structuredClone(seeds[seed]) as Json));
}
