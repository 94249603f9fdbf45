#!/usr/bin/env node
/**
 * `glm-engine` on PATH after `npm install -g glm-dllama`: runs the native executable that the install
 * built (build/Release/glm-engine) with the same arguments, stdio and exit status. Signals are passed
 * on so that Ctrl-C or SIGTERM stop a worker the way they stop the executable itself.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../engine/native.js';

const executable = join(packageRoot(), 'build', 'Release', process.platform === 'win32' ? 'glm-engine.exe' : 'glm-engine');
if (!existsSync(executable)) {
  process.stderr.write(`glm-engine: ${executable} is missing; run \`npm ci\` (or \`npm run build:native\`) with a C++ toolchain\n`);
  process.exit(1);
}
const child = spawn(executable, process.argv.slice(2), { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => child.kill(signal));
child.on('error', (e) => {
  process.stderr.write(`glm-engine: cannot start ${executable}: ${e.message}\n`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else {
    process.exit(code ?? 1);
  }
});
