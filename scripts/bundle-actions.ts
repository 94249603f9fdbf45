/**
 * `npm run bundle`: the actions' one ncc bundle (actions/dist/index.js) with a small entry per action,
 * and, from actions/src/definitions.ts, every action.yml, the root action.yml and docs/actions.md. CI
 * reruns it and fails when the committed files differ.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ACTIONS, type ActionDefinition, type InputDefinition } from '../actions/src/definitions.js';
import { packageRoot } from '../engine/native.js';
import { markdownText } from './markdown.js';

const root = packageRoot();
const GENERATED = 'Generated from actions/src/definitions.ts by `npm run bundle`: edit that file, not this one.';

function bundle(): void {
  const out = join(root, 'actions', 'dist');
  rmSync(out, { recursive: true, force: true });
  execFileSync(join(root, 'node_modules', '.bin', 'ncc'), ['build', join(root, 'dist', 'actions', 'src', 'main.js'), '-o', out, '--license', 'licenses.txt', '--quiet'], { stdio: 'inherit' });
  // ncc marks the folder as ESM with a package.json of its own; the repository's (type: module) does that
  // already, and a second one would stop the engine's search for the package root at actions/dist.
  rmSync(join(out, 'package.json'));
  for (const a of ACTIONS) writeFileSync(join(out, `${a.name}.js`), `// ${GENERATED}\nimport { run } from './index.js';\n\nawait run('${a.name}');\n`);
  writeFileSync(join(out, 'root.js'), `// ${GENERATED}\nimport { run } from './index.js';\n\n// The root action: the \`command\` input says which action to run.\nawait run();\n`);
}

function yamlInputs(inputs: Record<string, InputDefinition>) {
  return Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, { description: v.description, required: v.required ?? false, ...(v.default !== undefined ? { default: v.default } : {}) }]));
}

function actionYaml(a: { name: string; description: string; inputs: Record<string, InputDefinition>; outputs: Record<string, string> }, main: string, branding = false): string {
  const doc = {
    name: a.name === 'glm-dllama' ? a.name : `glm-dllama ${a.name}`,
    description: a.description,
    author: 'glm-dllama',
    inputs: yamlInputs(a.inputs),
    outputs: Object.fromEntries(Object.entries(a.outputs).map(([k, description]) => [k, { description }])),
    runs: { using: 'node24', main },
    ...(branding ? { branding: { icon: 'cpu', color: 'blue' } } : {}),
  };
  return `# ${GENERATED}\n${stringify(doc, { lineWidth: 0 })}`;
}

/** The root action takes any action's inputs plus `command`; an input's default is kept only where every action agrees. */
function rootDefinition(): ActionDefinition {
  const inputs: Record<string, InputDefinition> = {
    command: { description: `The action to run: ${ACTIONS.map((a) => a.name).join(', ')}.`, required: true },
  };
  const outputs: Record<string, string> = {};
  for (const name of new Set(ACTIONS.flatMap((a) => Object.keys(a.inputs)))) {
    const users = ACTIONS.filter((a) => a.inputs[name]);
    const defs = users.map((a) => a.inputs[name] as InputDefinition);
    const defaults = new Set(defs.map((d) => d.default));
    const first = defs[0] as InputDefinition;
    inputs[name] = { description: `${first.description} (${users.map((a) => a.name).join(', ')})`, ...(defaults.size === 1 && first.default !== undefined ? { default: first.default } : {}) };
  }
  for (const a of ACTIONS) for (const [k, d] of Object.entries(a.outputs)) outputs[k] ??= `${d} (${ACTIONS.filter((b) => b.outputs[k]).map((b) => b.name).join(', ')})`;
  return { name: 'glm-dllama', description: 'Convert, quantize, verify, benchmark and publish GLM models in the distributed-llama format; `command` picks the action.', inputs, outputs };
}

function reference(): string {
  const lines = [
    '# Actions reference',
    '',
    `<!-- ${GENERATED} -->`,
    '',
    'Use an action as `uses: glm-dllama/glm-dllama/actions/<name>@v1`, or the root action `uses: glm-dllama/glm-dllama@v1` with `command: <name>`.',
    'All run on `node24` (runner 2.327.1 or later). Booleans are the strings `true` and `false`.',
    '',
  ];
  for (const a of ACTIONS) {
    lines.push(`## ${a.name}`, '', markdownText(a.description), '', '| input | required | default | description |', '|---|---|---|---|');
    for (const [k, v] of Object.entries(a.inputs)) lines.push(`| \`${k}\` | ${v.required ? 'yes' : 'no'} | ${v.default !== undefined ? `\`${v.default.replace(/\|/g, '\\|')}\`` : ''} | ${markdownText(v.description)} |`);
    if (Object.keys(a.outputs).length) {
      lines.push('', '| output | description |', '|---|---|');
      for (const [k, d] of Object.entries(a.outputs)) lines.push(`| \`${k}\` | ${markdownText(d)} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

bundle();
for (const a of ACTIONS) {
  mkdirSync(join(root, 'actions', a.name), { recursive: true });
  writeFileSync(join(root, 'actions', a.name, 'action.yml'), actionYaml(a, `../dist/${a.name}.js`));
}
writeFileSync(join(root, 'action.yml'), actionYaml(rootDefinition(), 'actions/dist/root.js', true));
writeFileSync(join(root, 'docs', 'actions.md'), reference());
console.log(`bundled ${ACTIONS.length} actions into actions/dist; wrote their action.yml files, action.yml and docs/actions.md`);
