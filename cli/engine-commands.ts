/** The engine's commands: log-probs and speed on token ids. Thin: parse, call engine/, print. */
import { Command, InvalidArgumentError } from 'commander';
import { bench, LoadedModel, logprobs } from '../engine/index.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function tokenList(value: string): number[] {
  const ids = value.split(',').map((s) => Number(s.trim()));
  if (ids.length === 0 || ids.some((id) => !Number.isSafeInteger(id) || id < 0)) {
    throw new InvalidArgumentError('expected comma-separated token ids, e.g. 1,2,3');
  }
  return ids;
}

export function registerEngineCommands(program: Command): void {
  program
    .command('logprobs')
    .description('for each input token, the log-softmax of the next-token distribution, as JSON')
    .requiredOption('--model <file>', '.m model file')
    .requiredOption('--tokens <ids>', 'comma-separated token ids', tokenList)
    .option('--top <k>', 'print only the k most likely next tokens per position', positiveInt)
    .option('--threads <n>', 'threads (default: all cores)', positiveInt)
    .action((o: { model: string; tokens: number[]; top?: number; threads?: number }) => {
      const model = new LoadedModel(o.model, { threads: o.threads, contextLength: o.tokens.length });
      console.log(JSON.stringify(logprobs(model, o.tokens, o.top)));
    });

  program
    .command('bench')
    .description('prefill and decode speed (tokens/s, median and spread over repeats) and peak memory')
    .requiredOption('--model <file>', '.m model file')
    .option('--prompt-tokens <n>', 'prompt length', positiveInt, 512)
    .option('--gen-tokens <n>', 'generated tokens', positiveInt, 128)
    .option('--threads <n>', 'threads (default: all cores)', positiveInt)
    .option('--repeat <k>', 'runs to take the median of', positiveInt, 3)
    .option('--json', 'print one JSON object', false)
    .action((o: { model: string; promptTokens: number; genTokens: number; threads?: number; repeat: number; json: boolean }) => {
      const r = bench(o.model, o);
      if (o.json) {
        console.log(JSON.stringify(r));
        return;
      }
      const spread = (all: number[]) => `${Math.min(...all).toFixed(1)}-${Math.max(...all).toFixed(1)}`;
      console.log(
        [
          `prefill ${r.prompt_tokens} tokens: ${r.prefill_tps.toFixed(1)} tok/s (median of ${r.prefill_tps_all.length}, range ${spread(r.prefill_tps_all)})`,
          `decode  ${r.gen_tokens} tokens: ${r.decode_tps.toFixed(1)} tok/s (range ${spread(r.decode_tps_all)})`,
          `threads ${r.threads}, kernels ${r.kernels}, peak RSS ${(r.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB`,
        ].join('\n'),
      );
    });
}
