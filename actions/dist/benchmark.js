// Generated from actions/src/definitions.ts by `npm run bundle`: edit that file, not this one.
import { run } from './index.js';

await run('benchmark');
