/**
 * Bad inputs, run through the real CLI: each gives a clear message naming the file and the field or
 * tensor, a non-zero exit, and no output file.
 */
import { cp, open, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readShardHeader } from '../converter/safetensors.js';
import { cli, editJson, editShardHeader, filesIn, fixture, removeDir, shardOf, tempDir } from './helpers.js';

let dir: string;
let pristine: string;
let pristineGlm: string;

beforeAll(async () => {
  dir = await tempDir();
  pristine = await fixture(dir, { arch: 'glm4moe' });
  pristineGlm = await fixture(dir, { arch: 'glm' });
});
afterAll(async () => removeDir(dir));

let case_ = 0;
/** A fresh copy of a fixture to damage, and an output folder that must stay empty. */
async function damaged(source = pristine): Promise<{ model: string; outDir: string }> {
  case_++;
  const model = join(dir, `case-${case_}`);
  await cp(source, model, { recursive: true });
  const outDir = join(dir, `out-${case_}`);
  return { model, outDir };
}

async function expectRefused(model: string, outDir: string, weights: string, ...patterns: RegExp[]): Promise<void> {
  const out = join(outDir, 'model.m');
  const run = cli('convert', '--model', model, '--out', out, '--weights', weights);
  expect(run.status).not.toBe(0);
  for (const p of patterns) expect(run.stderr).toMatch(p);
  expect(run.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  const left = await filesIn(outDir).catch(() => []);
  expect(left).toEqual([]);
}

const K_PROJ = 'model.layers.1.self_attn.k_proj.weight';

it('refuses a truncated shard', async () => {
  const { model, outDir } = await damaged();
  const shard = await shardOf(model, K_PROJ);
  await truncate(shard, (await stat(shard)).size - 100);
  await expectRefused(model, outDir, 'q40', new RegExp(`${shard.split('/').pop()}`), /beyond the data section|truncated/);
});

it('refuses a header length beyond the file', async () => {
  const { model, outDir } = await damaged();
  const shard = await shardOf(model, K_PROJ);
  const handle = await open(shard, 'r+');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(1n << 40n);
  await handle.write(length, 0, 8, 0);
  await handle.close();
  await expectRefused(model, outDir, 'q40', /header length 1099511627776 runs past the end of the file/, new RegExp(shard.split('/').pop()!));
});

it('refuses overlapping data spans', async () => {
  const { model, outDir } = await damaged();
  const shard = await shardOf(model, K_PROJ);
  await editShardHeader(shard, (h) => {
    const k = h[K_PROJ] as { data_offsets: [number, number] };
    const other = Object.entries(h).find(([n, t]) => n !== K_PROJ && n !== '__metadata__' && (t as { data_offsets: number[] }).data_offsets[1]! - (t as { data_offsets: number[] }).data_offsets[0]! >= 8)!;
    const [begin] = (other[1] as { data_offsets: [number, number] }).data_offsets;
    const size = k.data_offsets[1] - k.data_offsets[0];
    k.data_offsets = [begin + 4, begin + 4 + size];
  });
  await expectRefused(model, outDir, 'q40', /overlapping data_offsets/);
});

it('refuses a checkpoint with a missing tensor', async () => {
  const { model, outDir } = await damaged();
  await editShardHeader(await shardOf(model, K_PROJ), (h) => delete h[K_PROJ]);
  await editJson(join(model, 'model.safetensors.index.json'), (j) => delete (j.weight_map as Record<string, string>)[K_PROJ]);
  await expectRefused(model, outDir, 'q40', new RegExp(`missing tensor ${K_PROJ.replace(/\./g, '\\.')} \\(needed for blk\\.1\\.attn_k\\.weight\\)`));
});

it('refuses a tensor whose shape does not match the config', async () => {
  const { model, outDir } = await damaged();
  const q = 'model.layers.1.self_attn.q_proj.weight';
  await editShardHeader(await shardOf(model, q), (h) => {
    const t = h[q] as { shape: number[] };
    t.shape = [t.shape[1]!, t.shape[0]!];
  });
  await expectRefused(model, outDir, 'q40', /tensor model\.layers\.1\.self_attn\.q_proj\.weight has shape \[64,128\] but .*config\.json implies \[128,64\]/);
});

it('refuses an unknown dtype, and names an unsupported one', async () => {
  const { model, outDir } = await damaged();
  await editShardHeader(await shardOf(model, K_PROJ), (h) => {
    (h[K_PROJ] as { dtype: string }).dtype = 'Q9';
  });
  await expectRefused(model, outDir, 'q40', /tensor model\.layers\.1\.self_attn\.k_proj\.weight: unknown dtype "Q9"/);

  const second = await damaged();
  await editShardHeader(await shardOf(second.model, K_PROJ), (h) => {
    const k = h[K_PROJ] as { dtype: string; data_offsets: [number, number] };
    k.dtype = 'F8_E4M3';
    k.data_offsets = [k.data_offsets[0], k.data_offsets[0] + (k.data_offsets[1] - k.data_offsets[0]) / 2];
  });
  await expectRefused(second.model, second.outDir, 'q40', /unsupported dtype F8_E4M3/, /k_proj/);
});

it('refuses weights holding NaN or infinite values', async () => {
  const { model, outDir } = await damaged();
  const shard = await shardOf(model, K_PROJ);
  const info = (await readShardHeader(shard)).find((t) => t.name === K_PROJ)!;
  const handle = await open(shard, 'r+');
  await handle.write(Buffer.from([0xc0, 0x7f, 0x80, 0x7f]), 0, 4, info.offset + 10); // bf16 NaN, +Inf
  await handle.close();
  await expectRefused(model, outDir, 'q40', /tensor model\.layers\.1\.self_attn\.k_proj\.weight holds 2 NaN or infinite values/);
});

it('refuses a config with a missing field', async () => {
  const { model, outDir } = await damaged();
  await editJson(join(model, 'config.json'), (c) => delete c.num_hidden_layers);
  await expectRefused(model, outDir, 'q40', /config\.json: field num_hidden_layers: is missing/);
});

it('refuses an inconsistent config field', async () => {
  const { model, outDir } = await damaged();
  await editJson(join(model, 'config.json'), (c) => {
    c.num_key_value_heads = 3;
  });
  await expectRefused(model, outDir, 'q40', /config\.json: field num_key_value_heads: 3 does not divide num_attention_heads/);
});

it('refuses an unknown architecture', async () => {
  const { model, outDir } = await damaged();
  await editJson(join(model, 'config.json'), (c) => {
    c.architectures = ['LlamaForCausalLM'];
  });
  await expectRefused(model, outDir, 'q40', /config\.json: field architectures: unknown architecture \["LlamaForCausalLM"\]; supported: ChatGLMModel/);
});

it('refuses q40 and q80 for rows that are not whole blocks, and converts them to f32', async () => {
  // Narrow the FFN to 120 (not a multiple of 32): shrink the down projection's rows and the fused gate/up.
  const { model, outDir } = await damaged(pristineGlm);
  const config = JSON.parse(await readFile(join(model, 'config.json'), 'utf8'));
  const hidden = config.hidden_size as number;
  await editJson(join(model, 'config.json'), (c) => {
    c.intermediate_size = 120;
  });
  for (let layer = 0; layer < config.num_hidden_layers; layer++) {
    const down = `model.layers.${layer}.mlp.down_proj.weight`;
    const gateUp = `model.layers.${layer}.mlp.gate_up_proj.weight`;
    for (const [name, shape] of [[down, [hidden, 120]], [gateUp, [240, hidden]]] as const) {
      await editShardHeader(await shardOf(model, name), (h) => {
        const t = h[name] as { shape: number[]; data_offsets: [number, number] };
        t.shape = [...shape];
        t.data_offsets = [t.data_offsets[0], t.data_offsets[0] + shape[0] * shape[1] * 2];
      });
    }
  }
  await expectRefused(model, outDir, 'q40', /model\.layers\.0\.mlp\.down_proj\.weight: row length 120 is not a multiple of 32/);
  await expectRefused(model, outDir, 'q80', /row length 120 is not a multiple of 32, which q80 blocks need/);
  const ok = cli('convert', '--model', model, '--out', join(outDir, 'f32.m'), '--weights', 'f32');
  expect(ok.status).toBe(0);
  expect(ok.stdout).toMatch(/converted glm checkpoint/);
  expect(await filesIn(outDir)).toEqual(['f32.m', 'f32.t']);
});

it('refuses a directory that is not a checkpoint', async () => {
  const empty = await tempDir();
  try {
    const run = cli('convert', '--model', empty, '--out', join(empty, 'x.m'));
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/config\.json: cannot read config\.json/);
    expect(await filesIn(empty)).toEqual([]);
  } finally {
    await removeDir(empty);
  }
});

describe('readShardHeader', () => {
  it('refuses invalid JSON and a span that does not match its shape', async () => {
    const file = join(dir, 'bad.safetensors');
    const write = async (json: string, dataBytes: number) => {
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
      await writeFile(file, Buffer.concat([prefix, Buffer.from(json), Buffer.alloc(dataBytes)]));
    };
    await write('{"a": ', 0);
    await expect(readShardHeader(file)).rejects.toThrow(/bad\.safetensors: header is not valid JSON/);
    await write('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', 8);
    await expect(readShardHeader(file)).rejects.toThrow(/tensor a: data_offsets \[0, 8\] span 8 bytes but shape \[3\] of F32 needs 12/);
    await write('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[4],"data_offsets":[8,16]}}', 16);
    await expect(readShardHeader(file)).resolves.toHaveLength(2);
  });
});
