/**
 * Runs a bundled action the way GitHub's runner does: a node process on actions/dist/<name>.js with
 * INPUT_* variables, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, and the event payload at
 * GITHUB_EVENT_PATH. The tests and the demo pipeline run the actions through it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../engine/native.js';

export interface ActionRun {
  code: number;
  outputs: Record<string, string>;
  summary: string;
  stdout: string;
  stderr: string;
}

export interface RunContext {
  /** The GitHub REST API the action talks to (GITHUB_API_URL). */
  githubUrl?: string;
  eventName?: string;
  event?: Record<string, unknown>;
  env?: Record<string, string>;
  runnerTemp?: string;
  /** The job's working folder (GITHUB_WORKSPACE and the action's current folder; default: a temporary one, removed afterwards). */
  workspace?: string;
  /** Each line the action prints, as it prints it (default: kept only in the result). */
  onLine?: (line: string) => void;
}

/** GITHUB_OUTPUT holds `name<<DELIMITER`, the value's lines, then the delimiter line, per output. */
export function parseOutputFile(text: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<]+)<<(.+)$/.exec(lines[i] as string);
    if (!m) continue;
    const end = lines.indexOf(m[2] as string, i + 1);
    outputs[m[1] as string] = lines.slice(i + 1, end).join('\n');
    i = end;
  }
  return outputs;
}

export async function runAction(name: string, inputs: Record<string, string>, context: RunContext = {}): Promise<ActionRun> {
  const dir = await mkdtemp(join(tmpdir(), 'glm-dllama-action-'));
  const files = { output: join(dir, 'output'), summary: join(dir, 'summary'), event: join(dir, 'event.json') };
  await Promise.all([writeFile(files.output, ''), writeFile(files.summary, ''), writeFile(files.event, JSON.stringify(context.event ?? {}))]);
  const workspace = context.workspace ?? dir;
  const env: Record<string, string> = {};
  // The runner's environment, not the test process's: no stray INPUT_*, GITHUB_* or cache-service variables.
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(INPUT_|GITHUB_|ACTIONS_|RUNNER_)/.test(k)) env[k] = v;
  Object.assign(env, {
    CI: 'true',
    GITHUB_ACTIONS: 'true',
    GITHUB_OUTPUT: files.output,
    GITHUB_STEP_SUMMARY: files.summary,
    GITHUB_EVENT_PATH: files.event,
    GITHUB_EVENT_NAME: context.eventName ?? 'pull_request',
    GITHUB_REPOSITORY: 'octo/models',
    GITHUB_API_URL: context.githubUrl ?? 'http://127.0.0.1:9',
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_WORKFLOW: 'model gate',
    GITHUB_RUN_ID: '42',
    GITHUB_SHA: 'f'.repeat(40),
    GITHUB_REF: 'refs/pull/7/merge',
    GITHUB_WORKSPACE: workspace,
    RUNNER_TEMP: context.runnerTemp ?? dir,
    RUNNER_OS: 'Linux',
    RUNNER_ARCH: 'X64',
    ...context.env,
  });
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v;
  const child = spawn(process.execPath, [join(packageRoot(), 'actions', 'dist', `${name}.js`)], { cwd: workspace, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  // As GitHub's runner shows a log: `::add-mask::VALUE` lines are not shown, and VALUE becomes *** in later lines.
  const masks: string[] = [];
  const echo = (text: string) => {
    for (const line of text.split('\n')) {
      const mask = /^::add-mask::(.+)$/.exec(line);
      if (mask) masks.push(mask[1]!);
      else if (line !== '') context.onLine?.(masks.reduce((shown, secret) => shown.split(secret).join('***'), line));
    }
  };
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    echo(d.toString());
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    echo(d.toString());
  });
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  const result = { code, outputs: parseOutputFile(await readFile(files.output, 'utf8')), summary: await readFile(files.summary, 'utf8'), stdout, stderr };
  await rm(dir, { recursive: true, force: true });
  return result;
}

export function pullRequestEvent(number: number): Record<string, unknown> {
  return { pull_request: { number, head: { repo: { full_name: 'octo/models' } }, base: { ref: 'main' } }, repository: { default_branch: 'main', full_name: 'octo/models' } };
}
