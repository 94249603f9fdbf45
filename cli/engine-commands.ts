/** The engine's commands: log-probs and speed on token ids. Thin: parse, call engine/, print. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import {
  bench,
  benchConcurrency,
  benchDrafts,
  DEFAULT_DRAFT,
  GenerationSession,
  Random,
  type DraftBenchRun,
  klDivergence,
  LoadedModel,
  logprobs,
  perplexity,
  type DistributedOptions,
  type ExpertSplit,
  type GenerateOptions,
  type GenerationStats,
  type KvCacheType,
  type LoadOptions,
  type SyncType,
} from '../engine/index.js';
import { basename } from 'node:path';
import { imatrixFromStats, writeImatrix } from '../converter/imatrix.js';
import { readModelFile } from '../converter/model-file.js';
import { collectImatrix } from '../engine/imatrix.js';
import { lazyProgress } from './progress.js';
import { engineThreads, nonNegative, nonNegativeInt, positiveInt, positiveIntList, probability, repeatableList } from './args.js';
import { DEFAULT_EVAL_TEXT } from '../pipeline/verify.js';
import { applyChatTemplate, loadTokenizer, StreamDecoder, tokenizerPathFor, type ChatMessage, type LoadedTokenizer } from '../tokenizer/index.js';

const kvCacheOption = () => new Option('--kv-cache <type>', 'keys and values in f32 (exact) or f16 (half the memory)').choices(['f32', 'f16']).default('f32');

/**
 * The flags of every engine command that runs a model: the device (docs/gpu.md), and those that make it the
 * root of a cluster of `glm-engine worker`s (docs/distributed.md).
 */
export interface DistributedFlags {
  device: string;
  cpuExperts?: 'all' | number;
  workers?: string[];
  sync: SyncType;
  secret?: string;
  secretFile?: string;
  experts: ExpertSplit;
  netTimeout: number;
}

export function withDistributed(command: Command): Command {
  return command
    .option('--device <device>', 'where the forward pass runs: cpu, vulkan, vulkan:N or auto (the first GPU, else the CPU)', 'auto')
    .option('--cpu-experts <all|n>', 'on a GPU: keep the routed experts of all (or the first N) MoE layers in RAM, run them on the CPU', (v: string) =>
      v === 'all' ? 'all' : nonNegativeInt(v),
    )
    .option('--workers <addresses>', 'run tensor-parallel with these glm-engine workers (host:port, comma-separated)', repeatableList)
    .addOption(new Option('--sync <type>', 'partial sums on the wire: q80 (compact) or f32 (exact)').choices(['q80', 'f32']).default('q80'))
    .addOption(new Option('--secret <text>', "the workers' shared secret (visible in ps: prefer the variable or --secret-file)").env('GLM_ENGINE_SECRET'))
    .option('--secret-file <path>', "read the workers' shared secret from the first line of this file")
    .addOption(new Option('--experts <split>', 'MoE: slice every expert over the nodes, or place whole experts').choices(['slice', 'place']).default('slice'))
    .option('--net-timeout <seconds>', "longest wait for a worker's answer", positiveInt, 30);
}

export function distributedOptions(o: DistributedFlags): DistributedOptions & { device: string; cpuExperts?: 'all' | number } {
  return { device: o.device, cpuExperts: o.cpuExperts, workers: o.workers, sync: o.sync, secret: o.secretFile ? secretFromFile(o.secretFile) : o.secret, experts: o.experts, timeoutMs: o.netTimeout * 1000 };
}

/** The first line of the file, as glm-engine's --secret-file reads it. */
function secretFromFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`--secret-file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const secret = text.split('\n')[0]!.replace(/\r$/, '');
  if (!secret) throw new Error(`--secret-file ${path}: the first line is empty`);
  return secret;
}

/** The tokenizer given, or the .t written beside the model by convert. */
async function tokenizerFor(model: string, tokenizer?: string): Promise<LoadedTokenizer> {
  const path = tokenizer ?? tokenizerPathFor(model);
  if (!tokenizer && !existsSync(path)) throw new Error(`${model}: no tokenizer found beside it (${path}); pass --tokenizer FILE`);
  return loadTokenizer(path);
}

/** --draft: speculative decoding with the model's MTP layer (generate, chat, serve, bench). */
export function draftOption(): Option {
  return new Option('--draft <k>', `tokens the model's MTP layer drafts per verification pass (0 disables; default ${DEFAULT_DRAFT} with --workers when the model was converted with --mtp, else 0)`).argParser(nonNegativeInt);
}

interface SamplingFlags extends DistributedFlags {
  draft?: number;
  kvCache: KvCacheType;
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed?: number;
  threads?: number;
  ctx?: number;
}

function withSampling(command: Command): Command {
  return withDistributed(command)
    .option('--max-tokens <n>', 'most tokens to generate', positiveInt, 256)
    .option('--temperature <t>', '0 is greedy', nonNegative, 0.8)
    .option('--top-p <p>', 'nucleus mass (1 disables)', probability, 0.95)
    .option('--top-k <k>', 'candidates kept (0 disables; a k past the vocabulary keeps all of it)', (v: string) => (v === '0' ? 0 : positiveInt(v)), 40)
    .option('--seed <n>', 'random seed (default: time)', positiveInt)
    .option('--threads <n>', 'threads (default: all cores)', engineThreads)
    .option('--ctx <n>', 'context length in tokens (default: the model\'s, at most 4096)', positiveInt)
    .addOption(kvCacheOption())
    .addOption(draftOption());
}

function generateOptions(o: SamplingFlags, tokenizer: LoadedTokenizer): GenerateOptions {
  return {
    maxTokens: o.maxTokens,
    temperature: o.temperature,
    topP: o.topP,
    topK: o.topK,
    seed: o.seed,
    stopIds: tokenizer.stopIds,
    vocabLimit: tokenizer.tokenizer.vocabSize,
  };
}

/** Streams a generation's text to stdout (stop tokens are not printed); returns the text and stats. */
async function streamReply(
  session: GenerationSession,
  tokenizer: LoadedTokenizer,
  ids: readonly number[],
  options: GenerateOptions,
): Promise<{ text: string; stats: GenerationStats }> {
  const stream = new StreamDecoder(tokenizer.tokenizer, { skipSpecialTokens: true });
  const stops = new Set(options.stopIds);
  let text = '';
  const run = session.generate(ids, options);
  for (let step = await run.next(); ; step = await run.next()) {
    if (step.done) {
      const rest = stream.flush();
      process.stdout.write(rest);
      return { text: text + rest, stats: step.value };
    }
    if (stops.has(step.value)) continue;
    const piece = stream.push(step.value);
    text += piece;
    process.stdout.write(piece);
  }
}

/**
 * The conversation to send for the next message: the earlier turns, oldest first dropped in pairs (as chat
 * front-ends do) until the prompt leaves room for a reply of min(maxTokens, a quarter of the context).
 * `ids` is undefined when the new message alone does not fit.
 */
export function fitConversation(
  turns: readonly ChatMessage[],
  message: ChatMessage,
  context: number,
  maxTokens: number,
  render: (messages: ChatMessage[]) => number[],
): { turns: ChatMessage[]; ids?: number[]; dropped: number } {
  const room = context - Math.min(maxTokens, Math.floor(context / 4));
  for (let dropped = 0; dropped <= turns.length; dropped += 2) {
    const kept = [...turns.slice(dropped), message];
    const ids = render(kept);
    if (ids.length <= room) return { turns: kept, ids, dropped };
  }
  return { turns: [...turns], dropped: 0 };
}

/** The stats after a reply; a reply cut by the end of the context (not by --max-tokens) says so. */
function statsLine(s: GenerationStats, context: number): string {
  const reused = s.reusedTokens > 0 ? ` (${s.reusedTokens} reused from the cache)` : '';
  const full = s.finishReason === 'length' && s.promptTokens + s.generatedTokens >= context ? `, the end of the ${context}-token context` : '';
  const drafted = s.draftedTokens > 0 ? `, ${s.acceptedTokens}/${s.draftedTokens} drafts accepted, ${(s.generatedTokens / Math.max(1, s.decodePasses)).toFixed(2)} tokens per pass` : '';
  return `[${s.promptTokens} prompt tokens${reused} at ${((s.promptTokens - s.reusedTokens) / s.prefillSeconds).toFixed(1)} tok/s, ${s.generatedTokens} generated at ${(s.generatedTokens / s.decodeSeconds).toFixed(1)} tok/s${drafted}, finish: ${s.finishReason}${full}]\n`;
}

async function textIds(tokenizer: LoadedTokenizer, file: string): Promise<number[]> {
  return tokenizer.tokenizer.encodeIds(await readFile(file, 'utf8'), { addSpecialTokens: false });
}

function tokenList(value: string): number[] {
  const ids = value.split(',').map((s) => Number(s.trim()));
  if (ids.length === 0 || ids.some((id) => !Number.isSafeInteger(id) || id < 0)) {
    throw new InvalidArgumentError('expected comma-separated token ids, e.g. 1,2,3');
  }
  return ids;
}

/** Tokens per chunk of perplexity and kld unless told otherwise. */
const DEFAULT_CHUNK = 512;

/**
 * The model for a measurement over chunks of `ctx` tokens: an explicit --ctx longer than the model's
 * context is an error; the default is shortened to fit, saying so on stderr.
 */
function chunkedModel(path: string, ctx: number | undefined, options: LoadOptions): LoadedModel {
  const model = new LoadedModel(path, { ...options, contextLength: ctx ?? DEFAULT_CHUNK });
  const context = model.contextLength;
  if (ctx !== undefined && ctx > context) {
    model.close();
    throw new RangeError(`--ctx ${ctx} is longer than ${path}'s context of ${context} tokens`);
  }
  if (ctx === undefined && model.contextLength < DEFAULT_CHUNK) {
    process.stderr.write(`${model.contextLength} tokens per chunk, the context of ${path} (--ctx to choose)\n`);
  }
  return model;
}

/** The options of a measurement over a text file (perplexity, kld). */
function withTextMeasure(command: Command): Command {
  return withDistributed(
    command
      .requiredOption('--model <file>', '.m model file')
      .option('--tokenizer <file>', '.t or tokenizer.json (default: the .t beside the model)')
      .option('--text <file>', 'UTF-8 text', DEFAULT_EVAL_TEXT)
      .option('--ctx <n>', `tokens per chunk (default ${DEFAULT_CHUNK}, or the model's context where shorter)`, positiveInt)
      .option('--threads <n>', 'threads (default: all cores)', engineThreads)
      .option('--json', 'print one JSON object', false),
  );
}

/** bench --draft: greedy decode with and without drafting, the acceptance rate and tokens per pass. */
function speculativeLines([plain, drafted]: DraftBenchRun[]): string[] {
  return [
    `speculative --draft ${drafted!.draft}: decode ${drafted!.decode_tps.toFixed(1)} tok/s vs ${plain!.decode_tps.toFixed(1)} without drafting (${(drafted!.decode_tps / plain!.decode_tps).toFixed(2)}x, greedy, median of ${drafted!.decode_tps_all.length})`,
    `  acceptance ${(100 * drafted!.acceptance_rate).toFixed(1)}% (by draft position: ${drafted!.acceptance_at.map((a) => `${(100 * a).toFixed(0)}%`).join(', ')}), ${drafted!.tokens_per_pass.toFixed(2)} tokens per pass`,
  ];
}

/** The line saying that bench's default lengths were shortened to the model's context. */
export function fittedNote(promptTokens: number, genTokens: number, context: number): string {
  return `${promptTokens} prompt + ${genTokens} generated tokens, to fit the model's context of ${context} (--prompt-tokens, --gen-tokens to choose)\n`;
}

export function registerEngineCommands(program: Command): void {
  withSampling(
    program
      .command('generate')
      .description('continue a prompt, streaming the text')
      .requiredOption('--model <file>', '.m model file')
      .option('--tokenizer <file>', '.t or tokenizer.json (default: the .t beside the model)')
      .requiredOption('--prompt <text>', 'the text to continue'),
  )
    .option('--chat', 'frame the prompt as one user message with the chat template', false)
    .action(async (o: SamplingFlags & { model: string; tokenizer?: string; prompt: string; chat: boolean }) => {
      const tokenizer = await tokenizerFor(o.model, o.tokenizer);
      const ids =
        o.chat && tokenizer.chatTemplate
          ? applyChatTemplate(tokenizer.tokenizer, tokenizer.chatTemplate, { messages: [{ role: 'user', content: o.prompt }] }, tokenizer.templateTokens).ids
          : tokenizer.tokenizer.encodeIds(o.prompt);
      const session = new GenerationSession(new LoadedModel(o.model, { threads: o.threads, contextLength: o.ctx, kvCache: o.kvCache, draft: o.draft, ...distributedOptions(o) }));
      const { stats } = await streamReply(session, tokenizer, ids, generateOptions(o, tokenizer));
      process.stdout.write('\n');
      process.stderr.write(statsLine(stats, session.model.contextLength));
    });

  withSampling(
    program
      .command('chat')
      .description('talk with the model (the chat template from the tokenizer; one message per line on stdin when it is not a terminal)')
      .requiredOption('--model <file>', '.m model file')
      .option('--tokenizer <file>', '.t or tokenizer.json (default: the .t beside the model)')
      .option('--system <text>', 'a system message'),
  ).action(async (o: SamplingFlags & { model: string; tokenizer?: string; system?: string }) => {
    const tokenizer = await tokenizerFor(o.model, o.tokenizer);
    if (!tokenizer.chatTemplate) throw new Error(`${tokenizer.file}: the tokenizer has no chat template`);
    const template = tokenizer.chatTemplate;
    const session = new GenerationSession(new LoadedModel(o.model, { threads: o.threads, contextLength: o.ctx, kvCache: o.kvCache, draft: o.draft, ...distributedOptions(o) }));
    const context = session.model.contextLength;
    const system: ChatMessage[] = o.system ? [{ role: 'system', content: o.system }] : [];
    let turns: ChatMessage[] = [];
    const terminal = process.stdin.isTTY === true;
    // On a terminal readline edits and echoes the line; piped, it only splits stdin into lines.
    const lines = createInterface({ input: process.stdin, ...(terminal ? { output: process.stdout, prompt: '> ' } : {}), terminal });
    if (terminal) lines.prompt();
    for await (const line of lines) {
      if (line.trim() !== '') {
        const fitted = fitConversation(turns, { role: 'user', content: line }, context, o.maxTokens, (m) => applyChatTemplate(tokenizer.tokenizer, template, { messages: [...system, ...m] }, tokenizer.templateTokens).ids);
        if (fitted.dropped > 0) process.stderr.write(`[the context of ${context} tokens is full: left out the ${fitted.dropped} oldest messages]\n`);
        if (!fitted.ids) {
          process.stderr.write(`[that message does not fit the context of ${context} tokens with room for a reply: not sent]\n`);
        } else {
          const { text, stats } = await streamReply(session, tokenizer, fitted.ids, generateOptions(o, tokenizer));
          turns = [...fitted.turns, { role: 'assistant', content: text.trim() }];
          process.stdout.write('\n');
          process.stderr.write(statsLine(stats, session.model.contextLength));
        }
      }
      if (terminal) lines.prompt();
    }
  });

  withTextMeasure(program.command('perplexity').description('perplexity of the model over a text, and the mean NLL of each chunk')).action(async (o: DistributedFlags & { model: string; tokenizer?: string; text: string; ctx?: number; threads?: number; json: boolean }) => {
    const tokenizer = await tokenizerFor(o.model, o.tokenizer);
    const ids = await textIds(tokenizer, o.text);
    const model = chunkedModel(o.model, o.ctx, { threads: o.threads, ...distributedOptions(o) });
    const result = perplexity(model, ids, model.contextLength);
    if (o.json) {
      console.log(JSON.stringify(result));
      return;
    }
    for (const c of result.chunks) console.log(`chunk at token ${c.start}: ${c.tokens} tokens, NLL ${c.nll.toFixed(4)}`);
    console.log(`perplexity ${result.perplexity.toFixed(4)} over ${result.predicted} predicted tokens (mean NLL ${result.nll.toFixed(4)})`);
  });

  withTextMeasure(
    program
      .command('kld')
      .description('KL divergence and top-1 agreement of a model against a reference model (e.g. q40 against f32) over a text')
      .requiredOption('--reference <file>', 'the reference .m file'),
  ).action(async (o: DistributedFlags & { model: string; reference: string; tokenizer?: string; text: string; ctx?: number; threads?: number; json: boolean }) => {
    const tokenizer = await tokenizerFor(o.model, o.tokenizer);
    const ids = await textIds(tokenizer, o.text);
    // The model under test runs on the cluster; the reference on this machine.
    const model = chunkedModel(o.model, o.ctx, { threads: o.threads, ...distributedOptions(o) });
    const r = klDivergence(model, chunkedModel(o.reference, model.contextLength, { threads: o.threads, device: o.device, cpuExperts: o.cpuExperts }), ids, model.contextLength);
    if (o.json) {
      console.log(JSON.stringify(r));
      return;
    }
    console.log(
      [
        `KL divergence: mean ${r.meanKld.toExponential(4)}, max ${r.maxKld.toExponential(4)} nats over ${r.positions} positions`,
        `top-1 agreement: ${(100 * r.top1Agreement).toFixed(2)}%`,
        `perplexity: ${r.perplexity.toFixed(4)} (reference ${r.referencePerplexity.toFixed(4)})`,
      ].join('\n'),
    );
  });

  program
    .command('imatrix')
    .description("collect an importance matrix (llama.cpp's GGUF imatrix format) over calibration text, for convert/quantize --imatrix")
    .requiredOption('--model <file>', '.m model file (f32 or f16; q80 gives nearly the same statistics)')
    .requiredOption('--text <file>', 'UTF-8 calibration text (keep it apart from any evaluation text)')
    .requiredOption('--out <file>', 'output imatrix (.gguf)')
    .option('--tokenizer <file>', '.t or tokenizer.json (default: the .t beside the model)')
    .option('--ctx <n>', `tokens per chunk (default ${DEFAULT_CHUNK}, or the model's context where shorter)`, positiveInt)
    .option('--chunks <k>', 'chunks to run at most (default: the whole text)', positiveInt)
    .option('--threads <n>', 'threads (default: all cores)', engineThreads)
    .action(async (o: { model: string; text: string; out: string; tokenizer?: string; ctx?: number; chunks?: number; threads?: number }) => {
      const tokenizer = await tokenizerFor(o.model, o.tokenizer);
      const ids = await textIds(tokenizer, o.text);
      const { header } = await readModelFile(o.model);
      const model = chunkedModel(o.model, o.ctx, { threads: o.threads, device: 'cpu' });
      const progress = lazyProgress('imatrix', 'tokens');
      try {
        const run = await progress.around(() =>
          collectImatrix(model, ids, { ctx: model.contextLength, chunks: o.chunks, onProgress: (done, total) => progress.update(done, total, '') }),
        );
        const matrix = imatrixFromStats(header, run.stats, { datasets: [basename(o.text)], chunkCount: run.chunks, chunkSize: model.contextLength });
        await writeImatrix(o.out, matrix);
        const unseen = [...matrix.entries.values()].reduce((n, e) => n + e.counts.filter((c) => c === 0).length, 0);
        console.log(
          `wrote ${o.out}: ${matrix.entries.size} entries from ${run.chunks} chunks of ${model.contextLength} tokens (${run.tokens} tokens of ${basename(o.text)})` +
            (unseen > 0 ? `; ${unseen} expert matrices saw no token (convert uses their stack's pooled mean)` : ''),
        );
      } finally {
        model.close();
      }
    });

  withDistributed(
    program
      .command('logprobs')
      .description('for each input token, the log-softmax of the next-token distribution, as JSON')
      .requiredOption('--model <file>', '.m model file')
      .requiredOption('--tokens <ids>', 'comma-separated token ids', tokenList)
      .option('--top <k>', 'print only the k most likely next tokens per position', positiveInt)
      .option('--threads <n>', 'threads (default: all cores)', engineThreads)
      .addOption(kvCacheOption()),
  ).action((o: DistributedFlags & { model: string; tokens: number[]; top?: number; threads?: number; kvCache: KvCacheType }) => {
    const model = new LoadedModel(o.model, { threads: o.threads, contextLength: o.tokens.length, kvCache: o.kvCache, ...distributedOptions(o) });
    console.log(JSON.stringify(logprobs(model, o.tokens, o.top)));
  });

  withDistributed(
    program
      .command('bench')
      .description('prefill and decode speed (tokens/s, median and spread over repeats) and peak memory')
      .requiredOption('--model <file>', '.m model file')
      .option('--prompt-tokens <n>', "prompt length (default 512, shortened to fit the model's context)", positiveInt)
      .option('--gen-tokens <n>', "generated tokens (default 128, shortened to fit the model's context)", positiveInt)
      .option('--threads <n>', 'threads (default: all cores)', engineThreads)
      .option('--repeat <k>', 'runs to take the median of', positiveInt, 3)
      .option(
        '--concurrency <levels>',
        'instead: that many generations at once at each level (e.g. 1,2,4,8,16), decoded together; aggregate and per-stream decode tokens/s and time to first token (prompt default 128, generated 64)',
        positiveIntList,
      )
      .addOption(kvCacheOption())
      .addOption(draftOption())
      .option('--json', 'print one JSON object', false),
  ).action(async (o: DistributedFlags & { model: string; promptTokens?: number; genTokens?: number; threads?: number; repeat: number; concurrency?: number[]; kvCache: KvCacheType; draft?: number; json: boolean }) => {
      if (o.concurrency) {
        if (o.workers?.length) throw new Error('--concurrency: batched decoding does not run with --workers yet');
        if (o.draft) throw new Error('--concurrency: batched decoding does not draft yet; leave out --draft');
        const c = await benchConcurrency(o.model, { levels: o.concurrency, promptTokens: o.promptTokens, genTokens: o.genTokens, threads: o.threads, kvCache: o.kvCache });
        if (o.json) {
          console.log(JSON.stringify(c));
          return;
        }
        console.log(`concurrency, prompt ${c.prompt_tokens} tokens, ${c.gen_tokens} generated each, ${c.threads} threads, KV cache ${c.kv_cache}`);
        for (const l of c.levels) {
          console.log(
            `${String(l.concurrency).padStart(3)} streams: aggregate decode ${l.aggregate_decode_tps.toFixed(1)} tok/s, per stream ${l.per_stream_decode_tps.toFixed(1)} tok/s, time to first token ${(1000 * l.ttft_mean_s).toFixed(0)} ms mean, ${(1000 * l.ttft_max_s).toFixed(0)} ms worst`,
          );
        }
        return;
      }
      const r = bench(o.model, { ...o, ...distributedOptions(o) });
      if (r.fitted_to_context) process.stderr.write(fittedNote(r.prompt_tokens, r.gen_tokens, r.context_length));
      // With --draft K: greedy decoding through GenerationSession at 0 and K drafts, on the same model and nodes.
      let speculative: DraftBenchRun[] | undefined;
      if (o.draft !== undefined && o.draft > 0) {
        const model = new LoadedModel(o.model, { threads: o.threads, contextLength: r.prompt_tokens + r.gen_tokens, kvCache: o.kvCache, draft: o.draft, ...distributedOptions(o) });
        const random = new Random(1);
        const prompt = Array.from({ length: r.prompt_tokens }, () => Math.floor(random.next() * model.vocabSize));
        speculative = await benchDrafts(model, prompt, r.gen_tokens, [0, o.draft], o.repeat);
        model.close();
      }
      if (o.json) {
        console.log(JSON.stringify(speculative ? { ...r, speculative } : r));
        return;
      }
      const spread = (all: number[]) => `${Math.min(...all).toFixed(1)}-${Math.max(...all).toFixed(1)}`;
      console.log(
        [
          `prefill ${r.prompt_tokens} tokens: ${r.prefill_tps.toFixed(1)} tok/s (median of ${r.prefill_tps_all.length}, range ${spread(r.prefill_tps_all)})`,
          `decode  ${r.gen_tokens} tokens: ${r.decode_tps.toFixed(1)} tok/s (range ${spread(r.decode_tps_all)})`,
          `threads ${r.threads}, kernels ${r.kernels}, KV cache ${r.kv_cache}, peak RSS ${(r.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB`,
          ...r.decode_bytes_per_token.map(
            (t, k) => `node ${k}: ${t.sent.toFixed(0)} bytes sent, ${t.received.toFixed(0)} received per decoded token (sync ${r.sync}, experts ${r.experts})`,
          ),
          ...(speculative ? speculativeLines(speculative) : []),
        ].join('\n'),
      );
    });
}
