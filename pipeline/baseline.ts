/**
 * Baselines: the base branch's results, stored where the next run finds them, keyed by model file (which
 * names the model and its quantization), runner label and step kind.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseResults, type StepResults } from './results.js';

export interface BaselineId {
  kind: StepResults['kind'];
  /** The model file's name, e.g. GLM-4.5-Air.q40.m. */
  model: string;
  /** The runner label the figures were measured on (speeds are only comparable on the same kind of machine). */
  runnerLabel: string;
  /** The branch whose results these are: saved by its pushes, read by pull requests against it. */
  branch: string;
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');

/** The object key / relative path of a baseline: baselines/<branch>/<runner>/<model>/<kind>.json. */
export function baselineKey(id: BaselineId): string {
  return `baselines/${slug(id.branch)}/${slug(id.runnerLabel)}/${slug(id.model)}/${id.kind}.json`;
}

export interface BaselineStore {
  /** Says where baselines live, for logs and the report's footer. */
  describe(id: BaselineId): string;
  read(id: BaselineId): Promise<StepResults | undefined>;
  write(id: BaselineId, results: StepResults): Promise<void>;
}

/** Parses a stored baseline, checking that it is the kind of result asked for. */
export function parseBaseline(text: string, where: string, id: BaselineId): StepResults {
  const results = parseResults(text, where);
  if (results.kind !== id.kind) throw new Error(`${where}: holds ${results.kind} results, expected ${id.kind}`);
  return results;
}

/** Baselines as files under a folder (a runner's persistent disk, or a folder another tool syncs). */
export function directoryBaselineStore(root: string): BaselineStore {
  const path = (id: BaselineId) => join(root, baselineKey(id));
  return {
    describe: (id) => path(id),
    async read(id) {
      let text: string;
      try {
        text = await readFile(path(id), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
      return parseBaseline(text, path(id), id);
    },
    async write(id, results) {
      const file = path(id);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(`${file}.tmp`, JSON.stringify(results, null, 2));
      await rename(`${file}.tmp`, file);
    },
  };
}
