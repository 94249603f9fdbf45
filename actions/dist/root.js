// Generated from actions/src/definitions.ts by `npm run bundle`: edit that file, not this one.
import { run } from './index.js';

// The root action: the `command` input says which action to run.
await run();
