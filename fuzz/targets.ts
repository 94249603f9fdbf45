/**
 * The TypeScript fuzz targets: every parser of bytes that can come from outside (a downloaded checkpoint, a
 * model file, a tokenizer, a pull request's results, an HTTP client). Each target mutates valid seeds built
 * from the deterministic fixtures and asserts more than "no crash": a refusal is the parser's own error
 * naming the file (never a TypeError or RangeError from deep inside), accepted input satisfies the format's
 * invariants, and nothing takes long.
 */
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { convert, planConversion } from '../converter/convert.js';
import { WeightType } from '../converter/dtypes.js';
import { InputError } from '../converter/errors.js';
import { writeFixture, FIXTURE_ARCHS } from '../converter/fixture.js';
import { decodeHeader, encodeHeader } from '../converter/model-header.js';
import { readModelFile } from '../converter/model-file.js';
import { Checkpoint, INDEX_FILE, readShardHeader } from '../converter/safetensors.js';
import { parseRegistry, RegistryError } from '../pipeline/registry.js';
import { loadReportRows, renderReport } from '../pipeline/report.js';
import { createServer, EngineGenerator } from '../server/index.js';
import { decodeTFile } from '../tokenizer/t-file.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { parseTiktokenModel } from '../tokenizer/tiktoken.js';
import { convertTokenizer, loadTokenizer } from '../tokenizer/load.js';
import { packageRoot } from '../engine/native.js';
import { mutatedBytes, mutatedJson } from './mutate.js';

/** A property violation: what the fuzzer reports and a regression test replays. */
export class Finding extends Error {
  override name = 'Finding';
}

export interface PreparedTarget<T> {
  input: fc.Arbitrary<T>;
  /** Resolves when the property holds for `input`; throws a Finding (or any unexpected error) when not. */
  check(input: T): Promise<void>;
  /** The input as the bytes a regression file stores. */
  encode(input: T): Buffer;
  /** The inverse of `encode`, for replaying saved inputs. */
  decode(bytes: Buffer): T;
  close?(): Promise<void>;
}

export interface FuzzTarget {
  name: string;
  /** What it parses, for the listing and docs/security.md. */
  parses: string;
  /** Builds the seeds (in `work`, a scratch folder) and the property. */
  prepare(work: string): Promise<PreparedTarget<unknown>>;
}

/** Runs `parse`; an error that is not one of `expected` (the parser's own refusals) is a finding. */
async function refusesCleanly<R>(parse: () => R | Promise<R>, expected: readonly (new (...args: never[]) => Error)[]): Promise<R | undefined> {
  try {
    return await parse();
  } catch (e) {
    if (expected.some((E) => e instanceof E)) return undefined;
    throw new Finding(`unexpected ${(e as Error).name ?? typeof e}: ${(e as Error).message ?? String(e)}`);
  }
}

/** Encoding and decoding text must not throw for a tokenizer its loader accepted. */
function roundTrip(tokenizer: Tokenizer): void {
  try {
    tokenizer.decode(tokenizer.encode('Hello, 世界! <|user|> 123\n\tend').ids);
  } catch (e) {
    throw new Finding(`an accepted tokenizer fails on text: ${(e as Error).name}: ${(e as Error).message}`);
  }
}

const bytesCodec = { encode: (b: Buffer) => b, decode: (b: Buffer) => b };
const jsonCodec = { encode: (v: unknown) => Buffer.from(JSON.stringify(v)), decode: (b: Buffer) => JSON.parse(b.toString('utf8')) as unknown };

async function fixtureDir(work: string, arch: (typeof FIXTURE_ARCHS)[number]): Promise<string> {
  const dir = join(work, `fixture-${arch}`);
  await writeFixture({ arch, outDir: dir, seed: 1 });
  return dir;
}

/** The 8-byte length, the JSON header, the data: a shard rebuilt around an edited header. */
function shardWithHeader(header: unknown, data: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

const safetensors: FuzzTarget = {
  name: 'safetensors',
  parses: 'a safetensors shard header (length prefix, JSON, dtypes, shapes, offsets)',
  async prepare(work) {
    const dir = await fixtureDir(work, 'glm4moe');
    const shardNames = (await readdir(dir)).filter((f) => f.endsWith('.safetensors'));
    const shards = await Promise.all(shardNames.map((f) => readFile(join(dir, f))));
    const parts = shards.map((s) => {
      const length = Number(s.readBigUInt64LE(0));
      return { header: JSON.parse(s.subarray(8, 8 + length).toString('utf8')) as unknown, data: s.subarray(8 + length) };
    });
    const file = join(work, 'fuzz.safetensors');
    return {
      // Half byte edits of whole shards, half structural edits of a header rebuilt with a correct prefix.
      input: fc.oneof(
        mutatedBytes(shards),
        fc.tuple(fc.nat({ max: parts.length - 1 }), mutatedJson(parts.map((p) => p.header))).map(([i, header]) => shardWithHeader(header, parts[i]!.data)),
      ),
      async check(bytes) {
        await writeFile(file, bytes);
        const tensors = await refusesCleanly(() => readShardHeader(file), [InputError]);
        for (const t of tensors ?? []) {
          if (t.offset < 8 || t.offset + t.byteLength > bytes.length) throw new Finding(`tensor ${t.name} [${t.offset}, +${t.byteLength}) lies outside the ${bytes.length}-byte file`);
        }
      },
      ...bytesCodec,
    } as PreparedTarget<Buffer> as PreparedTarget<unknown>;
  },
};

const safetensorsIndex: FuzzTarget = {
  name: 'safetensors-index',
  parses: 'model.safetensors.index.json (weight map, shard names)',
  async prepare(work) {
    const dir = await fixtureDir(work, 'glm4');
    const seed = JSON.parse(await readFile(join(dir, INDEX_FILE), 'utf8')) as unknown;
    return {
      input: mutatedJson([seed]),
      async check(index) {
        await writeFile(join(dir, INDEX_FILE), JSON.stringify(index));
        const checkpoint = await refusesCleanly(() => Checkpoint.open(dir), [InputError]);
        await checkpoint?.close();
      },
      ...jsonCodec,
    };
  },
};

const config: FuzzTarget = {
  name: 'config',
  parses: "config.json of every architecture (the conversion plan: fields, shapes against the checkpoint's tensors)",
  async prepare(work) {
    const dirs = await Promise.all(FIXTURE_ARCHS.map((arch) => fixtureDir(work, arch)));
    const seeds = await Promise.all(dirs.map(async (d) => ({ dir: d, config: JSON.parse(await readFile(join(d, 'config.json'), 'utf8')) as unknown })));
    return {
      input: fc.tuple(fc.nat({ max: seeds.length - 1 }), fc.nat()).chain(([i]) => mutatedJson([seeds[i]!.config]).map((c) => ({ arch: i, config: c }))),
      async check({ arch, config }: { arch: number; config: unknown }) {
        const dir = seeds[arch]!.dir;
        await writeFile(join(dir, 'config.json'), JSON.stringify(config));
        await refusesCleanly(() => planConversion(dir, WeightType.Q40), [InputError]);
      },
      encode: (v: unknown) => Buffer.from(JSON.stringify(v)),
      decode: (b: Buffer) => JSON.parse(b.toString('utf8')) as { arch: number; config: unknown },
    } as PreparedTarget<{ arch: number; config: unknown }> as PreparedTarget<unknown>;
  },
};

const modelHeader: FuzzTarget = {
  name: 'model-header',
  parses: 'the .m header (key/value pairs) and tensor table against the file size',
  async prepare(work) {
    const dir = await fixtureDir(work, 'glm4moe');
    const seeds: Buffer[] = [];
    for (const weights of ['q40', 'f32'] as const) {
      const out = join(work, `seed.${weights}.m`);
      await convert({ modelDir: dir, outFile: out, weights, tokenizerFile: null });
      seeds.push(await readFile(out));
    }
    const file = join(work, 'fuzz.m');
    return {
      input: mutatedBytes(seeds),
      async check(bytes) {
        await writeFile(file, bytes);
        const model = await refusesCleanly(() => readModelFile(file), [InputError]);
        if (!model) return;
        // Accepted: the header re-encodes to the same bytes (no field is read loosely and dropped).
        const { header, headerSize } = decodeHeader(bytes, file);
        const again = encodeHeader(header);
        if (!again.equals(bytes.subarray(0, headerSize))) throw new Finding('an accepted header does not re-encode to its own bytes');
      },
      ...bytesCodec,
    } as PreparedTarget<Buffer> as PreparedTarget<unknown>;
  },
};

const tFile: FuzzTarget = {
  name: 't-file',
  parses: 'the .t tokenizer file (header, vocabulary, the glm-dllama extension sections)',
  async prepare(work) {
    const dir = await fixtureDir(work, 'glm4moe');
    const out = join(work, 'seed.t');
    await convertTokenizer(dir, out);
    const seed = await readFile(out);
    return {
      input: mutatedBytes([seed], 1024),
      async check(bytes) {
        const t = await refusesCleanly(() => decodeTFile(bytes, 'fuzz.t'), [InputError]);
        // Accepted: the tokenizer it describes builds and round-trips text.
        if (t) roundTrip(new Tokenizer(t.spec));
      },
      ...bytesCodec,
    } as PreparedTarget<Buffer> as PreparedTarget<unknown>;
  },
};

const tokenizerJson: FuzzTarget = {
  name: 'tokenizer-json',
  parses: "a Hugging Face tokenizer.json (model, pre-tokenizer, normalizer, decoder, added tokens); accepted ones must encode and decode text",
  async prepare(work) {
    const dir = await fixtureDir(work, 'glm4');
    const seed = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')) as unknown;
    const file = join(dir, 'tokenizer.json');
    return {
      input: mutatedJson([seed]),
      async check(doc) {
        await writeFile(file, JSON.stringify(doc));
        const loaded = await refusesCleanly(() => loadTokenizer(file), [InputError]);
        if (!loaded) return;
        roundTrip(loaded.tokenizer);
      },
      ...jsonCodec,
    };
  },
};

const tiktoken: FuzzTarget = {
  name: 'tiktoken',
  parses: "glm-4-9b-chat's tokenizer.model (base64 token, rank per line)",
  async prepare() {
    const lines = ['IQ==', 'Ig==', 'Iw==', 'JA==', 'aGVsbG8=', 'IHdvcmxk'].map((b64, rank) => `${b64} ${rank}`);
    const seed = Buffer.from(`${lines.join('\n')}\n`);
    return {
      input: mutatedBytes([seed], 64),
      async check(bytes) {
        await refusesCleanly(() => parseTiktokenModel(bytes.toString('utf8'), 'fuzz.model'), [InputError]);
      },
      ...bytesCodec,
    } as PreparedTarget<Buffer> as PreparedTarget<unknown>;
  },
};

const registry: FuzzTarget = {
  name: 'registry',
  parses: 'models/registry.yaml (YAML, then the JSON schema and duplicate ids)',
  async prepare() {
    const text = await readFile(join(packageRoot(), 'models', 'registry.yaml'), 'utf8');
    return {
      input: fc.oneof(
        mutatedJson([parseYaml(text) as unknown]).map((doc) => Buffer.from(stringifyYaml(doc))),
        mutatedBytes([Buffer.from(text)], text.length),
      ),
      async check(bytes) {
        await refusesCleanly(() => parseRegistry(bytes.toString('utf8'), 'registry.yaml'), [RegistryError]);
      },
      ...bytesCodec,
    } as PreparedTarget<Buffer> as PreparedTarget<unknown>;
  },
};

const reportRows: FuzzTarget = {
  name: 'report-rows',
  parses: "a pipeline step's results file as the report step reads it from a fork's artifact, then renders it",
  async prepare(work) {
    const corpus = join(packageRoot(), 'fuzz', 'corpus', 'results');
    const seeds = await Promise.all((await readdir(corpus)).map(async (f) => JSON.parse(await readFile(join(corpus, f), 'utf8')) as unknown));
    const dir = join(work, 'rows');
    await mkdir(dir, { recursive: true });
    return {
      input: fc.oneof(
        { weight: 4, arbitrary: mutatedJson(seeds).map((doc) => Buffer.from(JSON.stringify(doc))) },
        { weight: 1, arbitrary: mutatedBytes(seeds.map((doc) => Buffer.from(JSON.stringify(doc)))) },
      ),
      async check(bytes) {
        await writeFile(join(dir, 'row.json'), bytes);
        const rows = await refusesCleanly(() => loadReportRows(dir), [InputError]);
        if (rows) renderReport(rows, { title: 'fuzz' });
      },
      ...bytesCodec,
    } as PreparedTarget<Buffer> as PreparedTarget<unknown>;
  },
};

interface HttpInput {
  path: string;
  contentType: string;
  body: string;
}

const httpRequests: FuzzTarget = {
  name: 'http',
  parses: "the server's request bodies (chat completions: messages, sampling fields, tools, stop) through HTTP",
  async prepare(work) {
    const dir = await fixtureDir(work, 'glm4moe');
    const model = join(work, 'http.q40.m');
    await convert({ modelDir: dir, outFile: model, weights: 'q40' });
    const generator = await EngineGenerator.load({ model, tokenizer: model.replace(/\.m$/, '.t'), threads: 1, contextLength: 128 });
    const server = await createServer({ generator, processMetrics: false, rateLimit: false });
    const url = await server.listen(0);
    const seeds: unknown[] = [
      { model: 'm', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 2 },
      { model: 'm', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], max_tokens: 2, temperature: 0.7, top_p: 0.9, top_k: 5, seed: 3, stop: ['x'] },
      { model: 'm', messages: [{ role: 'user', content: 'Weather?' }], max_tokens: 2, stream: true, tools: [{ type: 'function', function: { name: 'get', parameters: { type: 'object', properties: {} } } }], tool_choice: 'auto' },
      { model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }, { role: 'assistant', content: 'Yes', reasoning_content: 'hm' }, { role: 'user', content: 'Go' }], max_tokens: 2 },
    ];
    const body = fc.oneof(
      { weight: 8, arbitrary: mutatedJson(seeds).map((doc) => JSON.stringify(doc)) },
      { weight: 1, arbitrary: mutatedBytes(seeds.map((s) => Buffer.from(JSON.stringify(s)))).map((b) => b.toString('latin1')) },
    );
    return {
      input: fc.record({
        path: fc.constantFrom('/v1/chat/completions', '/v1/chat/completions', '/v1/chat/completions', '/v1/models', '/v1/completions'),
        contentType: fc.constantFrom('application/json', 'application/json', 'text/plain', 'application/x-www-form-urlencoded'),
        body,
      }),
      async check({ path, contentType, body }: HttpInput) {
        const response = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });
        const text = await response.text();
        if (response.status >= 500) throw new Finding(`HTTP ${response.status}: ${text.slice(0, 200)}`);
        if (response.status >= 400 && !response.headers.get('content-type')?.includes('text/event-stream')) {
          const error = (JSON.parse(text) as { error?: { message?: unknown; type?: unknown } }).error;
          if (typeof error?.message !== 'string' || typeof error.type !== 'string') throw new Finding(`HTTP ${response.status} without the OpenAI error shape: ${text.slice(0, 200)}`);
        }
      },
      encode: (v: HttpInput) => Buffer.from(JSON.stringify(v)),
      decode: (b: Buffer) => JSON.parse(b.toString('utf8')) as HttpInput,
      close: () => server.close(),
    } as PreparedTarget<HttpInput> as PreparedTarget<unknown>;
  },
};

export const FUZZ_TARGETS: readonly FuzzTarget[] = [safetensors, safetensorsIndex, config, modelHeader, tFile, tokenizerJson, tiktoken, registry, reportRows, httpRequests];

export function fuzzTarget(name: string): FuzzTarget {
  const target = FUZZ_TARGETS.find((t) => t.name === name);
  if (!target) throw new Error(`no fuzz target ${JSON.stringify(name)}; the targets: ${FUZZ_TARGETS.map((t) => t.name).join(', ')}`);
  return target;
}

/** Makes the scratch folder a target writes its seeds and inputs into. */
export async function scratch(root: string, target: FuzzTarget): Promise<string> {
  const dir = join(root, target.name);
  await mkdir(dir, { recursive: true });
  return dir;
}
