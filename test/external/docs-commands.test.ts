/**
 * The documented commands work as written: every shell block of README.md and docs/getting-started.md runs,
 * in order, in one fresh temporary folder, as a new user types them after `npm install -g` (the package's bin
 * entries on PATH; the checkout's models/ copied in, which the registry examples read). A block after a
 * `<!-- not-run: reason -->` comment needs GitHub, DigitalOcean, the Hugging Face hub or other machines: it is
 * counted and printed, and the flags its glm-dllama and glm-engine commands use are still checked against
 * their --help, so a renamed or removed flag fails here too. Needs curl (the serve example).
 * @needs curl
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, runProgram, tempDir } from '../helpers.js';

const DOCS = ['README.md', 'docs/getting-started.md'];
const BLOCK_SECONDS = 240;

interface ShellBlock {
  file: string;
  line: number;
  code: string;
  /** Why it is not run, from the comment before it. */
  notRun?: string;
}

/** The ```sh / ```bash blocks of a Markdown text (indented ones in lists too), with a not-run mark when one precedes them. */
function shellBlocks(markdown: string, file: string): ShellBlock[] {
  const lines = markdown.split('\n');
  const blocks: ShellBlock[] = [];
  let previous = '';
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```+\s*(\S*)\s*$/.exec(lines[i]!);
    if (!open) {
      if (lines[i]!.trim() !== '') previous = lines[i]!.trim();
      continue;
    }
    const indent = open[1]!.length;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^\s*```+\s*$/.test(lines[i]!); i++) body.push(lines[i]!.slice(indent));
    if (['sh', 'bash', 'shell'].includes(open[2]!)) {
      const mark = /^<!--\s*not-run:\s*(.+?)\s*-->$/.exec(previous);
      blocks.push({ file, line: start + 1, code: body.join('\n'), ...(mark ? { notRun: mark[1]! } : {}) });
    }
    previous = '';
  }
  return blocks;
}

/** Each command line of a block (continuations joined, comments dropped) that calls `program`, as [subcommands, flags]. */
function commandsOf(code: string, program: string): { path: string[]; flags: string[] }[] {
  const joined = code.replace(/\\\n/g, ' ');
  const found: { path: string[]; flags: string[] }[] = [];
  for (const raw of joined.split('\n')) {
    const line = raw.replace(/(^|\s)#.*$/, '');
    const at = line.search(new RegExp(`(^|[\\s|;&(=])${program}\\s`));
    if (at < 0) continue;
    const words = line.slice(at).trim().split(/\s+/).slice(1);
    const path: string[] = [];
    for (const w of words) {
      if (path.length === 2 || !/^[a-z][a-z-]*$/.test(w)) break;
      path.push(w);
    }
    const flags = words.filter((w) => /^--[a-z][a-z0-9-]*/.test(w)).map((w) => /^--[a-z][a-z0-9-]*/.exec(w)![0]);
    found.push({ path, flags });
  }
  return found;
}

/** Shims for the package's bin entries, as `npm install -g` makes them, in a folder for PATH. */
function installBins(dir: string): void {
  const bin = (JSON.parse(readFileSync('package.json', 'utf8')) as { bin: Record<string, string> }).bin;
  mkdirSync(dir, { recursive: true });
  for (const [name, target] of Object.entries(bin)) {
    const shim = join(dir, name);
    writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" "${join(process.cwd(), target)}" "$@"\n`);
    chmodSync(shim, 0o755);
  }
}

const helps = new Map<string, string>();

/** The flags a command accepts, read from its help (commander's --help, glm-engine's usage). */
function helpText(bins: string, program: string, path: string[]): string {
  const command = program === 'glm-engine' ? [] : path;
  const key = [bins, program, ...command].join(' ');
  if (!helps.has(key)) {
    const r = spawnSync(join(bins, program), [...command, '--help'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${program} ${command.join(' ')} --help failed (${r.status}): ${r.stderr}`);
    helps.set(key, r.stdout);
  }
  return helps.get(key)!;
}

/** The flags of a block's commands that their help does not list. */
function unknownFlags(bins: string, code: string): string[] {
  const unknown: string[] = [];
  for (const program of ['glm-dllama', 'glm-engine']) {
    for (const { path, flags } of commandsOf(code, program)) {
      const help = helpText(bins, program, path);
      for (const flag of flags) if (!new RegExp(`${flag}(?![a-z0-9-])`).test(help)) unknown.push(`${[program, ...path].join(' ')} ${flag}`);
    }
  }
  return unknown;
}

function runBlock(block: ShellBlock, cwd: string, bins: string): { status: number; output: string } {
  const script = join(cwd, '.block.sh');
  // Background jobs a block starts (a server, a worker) end with it.
  writeFileSync(script, `set -euo pipefail\ntrap 'jobs -p | xargs -r kill 2>/dev/null || true; wait' EXIT\n${block.code}\n`);
  const r = spawnSync('bash', [script], {
    cwd,
    encoding: 'utf8',
    input: '',
    timeout: BLOCK_SECONDS * 1000,
    env: { ...process.env, PATH: `${bins}:${process.env.PATH}` },
  });
  if (r.error) throw new Error(`bash: ${r.error.message}`);
  return { status: r.status ?? -1, output: `${r.stdout}\n${r.stderr}` };
}

const blocks = DOCS.flatMap((file) => shellBlocks(readFileSync(file, 'utf8'), file));
const label = (b: ShellBlock) => `${b.file}:${b.line}`;

describe('the documented shell blocks', () => {
  let work: string;
  let bins: string;

  beforeAll(async () => {
    runProgram('curl', ['--version']);
    work = await tempDir('glm-dllama-docs-');
    bins = join(work, '.bin');
    installBins(bins);
    cpSync('models', join(work, 'models'), { recursive: true });
    const skipped = blocks.filter((b) => b.notRun);
    console.log(
      [`${blocks.length - skipped.length} shell blocks run, ${skipped.length} not run:`, ...skipped.map((b) => `  ${label(b)}: ${b.notRun}`)].join('\n'),
    );
  });
  afterAll(async () => removeDir(work));

  test('are found, in both files', () => {
    for (const file of DOCS) expect(blocks.filter((b) => b.file === file && !b.notRun).length).toBeGreaterThan(0);
  });

  test.each(blocks.filter((b) => !b.notRun).map((b) => [label(b), b] as const))('%s runs', (_, block) => {
    const r = runBlock(block, work, bins);
    if (r.status !== 0) throw new Error(`${label(block)} exited ${r.status}:\n${block.code}\n--- output ---\n${r.output.slice(-4000)}`);
  }, (BLOCK_SECONDS + 10) * 1000);

  test.each(blocks.filter((b) => b.notRun).map((b) => [label(b), b] as const))('%s (not run) uses only flags that exist', (_, block) => {
    expect(unknownFlags(bins, block.code)).toEqual([]);
  }, 60_000);
});

describe('the checker itself', () => {
  const markdown = [
    'Text.',
    '```sh',
    'glm-dllama bench --model m.q40.m --no-such-flag   # a comment --not-a-flag',
    '```',
    '<!-- not-run: needs GitHub -->',
    '```bash',
    'gh api x | \\',
    '  glm-dllama registry check-updates --write --hub-url x',
    'glm-engine worker --port 1 --made-up 2',
    '```',
    '```yaml',
    'a: 1',
    '```',
    '1. In a list:',
    '   ```sh',
    '   echo indented',
    '   ```',
  ].join('\n');

  test('finds sh and bash blocks, indented ones too, and their not-run marks', () => {
    expect(shellBlocks(markdown, 'x.md')).toEqual([
      { file: 'x.md', line: 2, code: 'glm-dllama bench --model m.q40.m --no-such-flag   # a comment --not-a-flag' },
      { file: 'x.md', line: 6, notRun: 'needs GitHub', code: 'gh api x | \\\n  glm-dllama registry check-updates --write --hub-url x\nglm-engine worker --port 1 --made-up 2' },
      { file: 'x.md', line: 15, code: 'echo indented' },
    ]);
  });

  test('reads commands and flags, and finds the flags that do not exist', async () => {
    const [first, second] = shellBlocks(markdown, 'x.md');
    expect(commandsOf(first!.code, 'glm-dllama')).toEqual([{ path: ['bench'], flags: ['--model', '--no-such-flag'] }]);
    expect(commandsOf(second!.code, 'glm-dllama')).toEqual([{ path: ['registry', 'check-updates'], flags: ['--write', '--hub-url'] }]);
    const dir = await tempDir('glm-dllama-docs-');
    try {
      installBins(join(dir, 'bin'));
      expect(unknownFlags(join(dir, 'bin'), first!.code)).toEqual(['glm-dllama bench --no-such-flag']);
      expect(unknownFlags(join(dir, 'bin'), second!.code)).toEqual(['glm-engine worker --made-up']);
      const run = runBlock(first!, dir, join(dir, 'bin'));
      expect(run.status).not.toBe(0);
      expect(run.output).toMatch(/unknown option '--no-such-flag'/);
    } finally {
      await removeDir(dir);
    }
  }, 60_000);
});
