/**
 * Baselines in the GitHub Actions cache. Cache entries are immutable, so each save gets a unique key and a
 * read restores the newest entry under the baseline's key prefix; runs on pull requests can read the
 * entries saved on their base branch.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as cache from '@actions/cache';
import * as core from '@actions/core';
import { baselineKey, parseBaseline, type BaselineId, type BaselineStore } from '../../pipeline/baseline.js';

// Relative to the workspace, so that the cache version (a hash of the path list) matches across runners.
const ROOT = '.glm-dllama-baselines';

export function actionsCacheBaselineStore(): BaselineStore {
  const folder = (id: BaselineId) => dirname(join(ROOT, baselineKey(id)));
  const file = (id: BaselineId) => join(ROOT, baselineKey(id));
  const prefix = (id: BaselineId) => `glm-dllama-${baselineKey(id)}-`;
  return {
    describe: (id) => `actions cache ${prefix(id)}*`,
    async read(id) {
      if (!cache.isFeatureAvailable()) {
        core.warning('the actions cache is not available on this runner: no baseline read');
        return undefined;
      }
      const hit = await cache.restoreCache([folder(id)], `${prefix(id)}${process.env.GITHUB_SHA ?? ''}`, [prefix(id)]);
      if (!hit) return undefined;
      return parseBaseline(await readFile(file(id), 'utf8'), `cache entry ${hit}`, id);
    },
    async write(id, results) {
      if (!cache.isFeatureAvailable()) {
        core.warning('the actions cache is not available on this runner: baseline not saved');
        return;
      }
      await mkdir(folder(id), { recursive: true });
      await writeFile(file(id), JSON.stringify(results, null, 2));
      await cache.saveCache([folder(id)], `${prefix(id)}${process.env.GITHUB_SHA ?? ''}-${process.env.GITHUB_RUN_ID ?? Date.now()}-${process.env.GITHUB_RUN_ATTEMPT ?? 1}`);
    },
  };
}
