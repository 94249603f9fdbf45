/**
 * `npm run stand-ins -- --model-dir m [--repo zai-org/tiny-glm] [--hub-port 8090] [--s3-port 4568] [--bucket my-models]`:
 * the local stand-ins the tests use, started by hand to try `download`, `convert --model hf:...`,
 * `registry check-updates` and `publish` without the network or an account. The hub serves one folder
 * as one repository; the S3 server (s3rver) keeps its buckets under .stand-ins/s3. Runs until Ctrl-C.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startLocalS3 } from '../pipeline/local-s3.js';
import { startHubServer } from '../test/hub-server.js';

const { values } = parseArgs({
  options: {
    'model-dir': { type: 'string' },
    repo: { type: 'string', default: 'zai-org/tiny-glm' },
    'hub-port': { type: 'string', default: '8090' },
    's3-port': { type: 'string', default: '4568' },
    bucket: { type: 'string', default: 'my-models' },
  },
});
if (!values['model-dir']) {
  console.error('stand-ins: --model-dir DIR is required (a checkpoint folder, e.g. from `glm-dllama fixture --out m`)');
  process.exit(2);
}
const hub = await startHubServer({ repo: values.repo, dir: values['model-dir'], port: Number(values['hub-port']) });
const s3 = await startLocalS3({ directory: join('.stand-ins', 's3'), buckets: [values.bucket], port: Number(values['s3-port']) });
console.log(
  [
    `hub: ${hub.url} serves ${values['model-dir']} as hf:${hub.repo} (commit ${hub.commit}); pass --hub-url ${hub.url} or set HF_ENDPOINT=${hub.url}`,
    `S3:  ${s3.endpoint}, bucket ${values.bucket}; publish with --endpoint ${s3.endpoint} and SPACES_ACCESS_KEY_ID=${s3.accessKeyId} SPACES_SECRET_ACCESS_KEY=${s3.secretAccessKey}`,
    'Ctrl-C stops both.',
  ].join('\n'),
);
const stop = () => void Promise.all([hub.close(), s3.close()]).then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
