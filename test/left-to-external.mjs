// Jest global set-up of `npm test`: one line naming what is left to `npm run test:external` (the checks that
// need Debian programs), read from the `@needs` tag of each test/external file, so that a green `npm test` on a
// machine with only Node and a C++ toolchain says what it did not run.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export default function leftToExternal() {
  const dir = join(process.cwd(), 'test', 'external');
  const needs = new Set();
  const files = readdirSync(dir).filter((f) => f.endsWith('.test.ts'));
  for (const file of files) {
    const tag = /@needs\s+(.+)/.exec(readFileSync(join(dir, file), 'utf8'));
    for (const program of tag ? tag[1].split(/,\s*/) : []) needs.add(program.trim());
  }
  needs.add('aarch64 g++ and qemu-user (scripts/test-arm.mjs)');
  console.log(`\nnpm test leaves ${files.length} suites to \`npm run test:external\` (needs ${[...needs].join(', ')})`);
}
