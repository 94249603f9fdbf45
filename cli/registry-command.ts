/** `glm-dllama registry ...`: validate the models registry, look for new upstream revisions, build workflow matrices. */
import { Command, InvalidArgumentError } from 'commander';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { commaList } from './args.js';
import { affectedModels, checkUpdates, loadRegistry, matrixOf, writeRevisions } from '../pipeline/registry.js';

const DEFAULT_FILE = 'models/registry.yaml';

function runnerLabel(value: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(value)) throw new InvalidArgumentError("a runner label: letters, digits, '.', '_' and '-'");
  return value;
}

export function registerRegistryCommand(program: Command): void {
  const registry = program.command('registry').description('the models registry (models/registry.yaml) the workflows run on');

  registry
    .command('validate')
    .description('check a registry file against models/registry.schema.json')
    .argument('[file]', 'registry file', DEFAULT_FILE)
    .action(async (file: string) => {
      const r = await loadRegistry(file);
      const unpinned = r.models.filter((m) => m.source.kind === 'hub' && m.source.revision === null).map((m) => m.id);
      console.log(`${file}: ${r.models.length} models valid${unpinned.length > 0 ? ` (unpinned: ${unpinned.join(', ')})` : ''}`);
    });

  registry
    .command('check-updates')
    .description("compare each model's pinned revision with its Hugging Face repository's latest commit")
    .argument('[file]', 'registry file', DEFAULT_FILE)
    .option('--hub-url <url>', 'Hugging Face endpoint (default $HF_ENDPOINT or https://huggingface.co)')
    .option('--write', 'write the new revisions into the file (comments are kept)', false)
    .option('--json', 'print the updates as JSON', false)
    .action(async (file: string, o: { hubUrl?: string; write: boolean; json: boolean }) => {
      const updates = await checkUpdates(await loadRegistry(file), { hubUrl: o.hubUrl, accessToken: process.env.HF_TOKEN || undefined });
      if (o.write && updates.length > 0) await writeRevisions(file, updates);
      if (o.json) {
        console.log(JSON.stringify(updates));
        return;
      }
      for (const u of updates) console.log(`${u.id} (${u.repo}): ${u.current ?? 'unpinned'} -> ${u.latest}`);
      console.log(updates.length === 0 ? 'every model is at its latest revision' : `${updates.length} update(s)${o.write ? `, written to ${file}` : ''}`);
    });

  registry
    .command('matrix')
    .description('print the GitHub Actions matrix ({"include":[...]}, one entry per model and quantization) of the models a change affects')
    .argument('[file]', 'registry file', DEFAULT_FILE)
    .option('--base <file>', "the base branch's registry; without it (or when it is missing) every model is affected")
    .option('--changed-files <file>', 'the changed paths, one a line (git diff --name-only)')
    .option('--all-if-changed <prefixes>', 'comma-separated path prefixes that affect every model', commaList, ['converter/', 'engine/'])
    .option('--models <ids>', 'these models only (comma-separated ids), whatever changed', commaList)
    .option('--self-hosted-label <label>', 'add this runner label to every self-hosted entry (the publish workflow runs on runners of its own)', runnerLabel)
    .action(async (file: string, o: { base?: string; changedFiles?: string; allIfChanged: string[]; models?: string[]; selfHostedLabel?: string }) => {
      const head = await loadRegistry(file);
      let models;
      if (o.models) {
        const unknown = o.models.filter((id) => !head.models.some((m) => m.id === id));
        if (unknown.length > 0) throw new Error(`${file}: no model with id ${unknown.join(', ')}`);
        models = head.models.filter((m) => o.models!.includes(m.id));
      } else {
        const base = o.base && existsSync(o.base) ? await loadRegistry(o.base) : undefined;
        const changed = o.changedFiles ? (await readFile(o.changedFiles, 'utf8')).split('\n').filter((l) => l !== '') : [];
        models = affectedModels(head, base, changed, o.allIfChanged);
      }
      const { include, skipped } = matrixOf(models, o.selfHostedLabel);
      if (skipped.length > 0) process.stderr.write(`skipped (revision unpinned): ${skipped.join(', ')}\n`);
      console.log(JSON.stringify({ include }));
    });
}
