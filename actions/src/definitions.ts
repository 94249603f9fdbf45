/**
 * The actions' interface: every input and output with its description and default. Each action.yml, the
 * root action.yml and docs/actions.md are generated from this (`npm run bundle`), so they cannot drift.
 */
export interface InputDefinition {
  description: string;
  required?: boolean;
  default?: string;
}

export interface ActionDefinition {
  name: string;
  description: string;
  inputs: Record<string, InputDefinition>;
  outputs: Record<string, string>;
}

/** Where results go, what they are compared with, and the pull-request comment: shared by the steps that report. */
const REPORTING: Record<string, InputDefinition> = {
  'results-dir': { description: 'Folder collecting this run\'s results (one JSON file per step) for the report. Default: $RUNNER_TEMP/glm-dllama-results.' },
  'github-token': { description: 'Token used to comment on the pull request.', default: '${{ github.token }}' },
  comment: { description: 'Update the run\'s sticky pull-request comment with every result so far (true/false). Default: true on pull_request events.' },
  'comment-key': { description: 'Names the sticky comment: one comment per key. Default: the workflow\'s name.' },
  'pr-number': { description: 'The pull request to comment on, where the event carries none (workflow_run).' },
  'runner-label': { description: 'The kind of machine the figures come from; baselines are kept per label. Default: <os>-<arch>.' },
  'baseline-store': { description: 'Where base-branch results are read and saved: cache (the actions cache), spaces (the bucket given by bucket/region/endpoint and keys), none, or an absolute folder path.', default: 'cache' },
  'save-baseline': { description: 'Save this run\'s results as the baseline when every gate passed (true/false). Default: true on a push to the default branch.' },
};

const SPACES: Record<string, InputDefinition> = {
  bucket: { description: 'The Spaces (S3) bucket.' },
  region: { description: 'Spaces region (nyc3, sfo3, ams3, fra1, sgp1, ...); the endpoint is https://<region>.digitaloceanspaces.com.' },
  endpoint: { description: 'Any S3 endpoint URL instead of a Spaces region (path-style addressing).' },
  'access-key-id': { description: 'Spaces access key (masked in logs).' },
  'secret-access-key': { description: 'Spaces secret key (masked in logs).' },
};

const THREADS: InputDefinition = { description: 'CPU threads. Default: all cores.' };
const DEVICE: InputDefinition = { description: 'Where the forward pass runs: cpu, vulkan, vulkan:N or auto (the first GPU, else the CPU; docs/gpu.md).', default: 'auto' };

export const ACTIONS: ActionDefinition[] = [
  {
    name: 'convert-glm',
    description: 'Convert a GLM checkpoint (a local folder or hf:owner/name@revision) to a distributed-llama .m model and .t tokenizer.',
    inputs: {
      model: { description: 'A checkpoint folder (config.json + safetensors) or hf:owner/name@revision.', required: true },
      weights: { description: 'Weight type: q40, q80, f16 or f32.', default: 'q40' },
      'out-dir': { description: 'Folder for the .m and .t files.', default: 'models' },
      'hf-token': { description: 'Hugging Face token for gated or private repositories (masked in logs).' },
      'cache-dir': { description: 'Download cache, one folder per repository commit. Default: $RUNNER_TOOL_CACHE/glm-dllama-hub.' },
      'hub-url': { description: 'The Hugging Face hub address. Default: https://huggingface.co (or HF_ENDPOINT).' },
    },
    outputs: {
      'model-path': 'The .m file written.',
      'tokenizer-path': 'The .t file written beside it (empty when the checkpoint has no tokenizer).',
      sha256: 'sha256 of the .m file.',
      bytes: 'Size of the .m file in bytes.',
      params: 'Number of parameters converted.',
      'source-commit': 'The commit a hub revision resolved to (empty for a local checkpoint); pass it to publish-to-spaces as source-revision.',
    },
  },
  {
    name: 'quantize',
    description: 'Quantize an f32/f16 .m model to q40/q80 (or dequantize to f32) and report the error per tensor kind.',
    inputs: {
      model: { description: 'The f32 or f16 .m file.', required: true },
      weights: { description: 'Target weight type: q40, q80, f16 or f32.', default: 'q40' },
      'output-type': { description: "Weight type of the output head (q40, q80, f16 or f32). Default: that of `weights`; a different type writes the header's output_float_type key, which distributed-llama does not read." },
      imatrix: {
        description:
          'q40: importance matrix (GGUF imatrix or legacy .dat, from `glm-dllama imatrix` or llama.cpp) for the weighted scale search: a path, or `spaces:<key>` to fetch it from the bucket given by the Spaces inputs. The results, manifest and model card record it and its calibration text.',
      },
      out: { description: 'Output .m file. Default: the input name with the new weight type.' },
      threads: THREADS,
      ...REPORTING,
      ...SPACES,
    },
    outputs: {
      'model-path': 'The .m file written.',
      errors: 'JSON array of {kind, tensors, rmse, maxAbs} per tensor kind.',
      results: 'The results JSON file.',
    },
  },
  {
    name: 'verify-perplexity',
    description: 'Perplexity of a model over a text, KL divergence and top-1 agreement against a reference; fails when a gate is crossed.',
    inputs: {
      model: { description: 'The .m file to verify.', required: true },
      tokenizer: { description: '.t or tokenizer.json. Default: the .t beside the model.' },
      text: { description: 'UTF-8 evaluation text. Default: the evaluation text shipped with glm-dllama.' },
      reference: { description: 'A reference .m (e.g. the f32 model: perplexity, KL and top-1 agreement) or a results JSON (perplexity only).' },
      'max-ppl-increase': { description: 'Gate: largest perplexity increase over the reference, in percent.' },
      'max-kld': { description: 'Gate: largest mean KL divergence from the reference model, in nats.' },
      ctx: { description: 'Tokens per evaluation chunk. Default: 512 or the model\'s context.' },
      threads: THREADS,
      device: DEVICE,
      ...REPORTING,
      ...SPACES,
    },
    outputs: {
      perplexity: 'Perplexity over the text.',
      kld: 'Mean KL divergence from the reference model (empty without a reference model).',
      'top1-agreement': 'Fraction of positions whose most likely token matches the reference\'s.',
      passed: 'true when every gate passed.',
      results: 'The results JSON file.',
    },
  },
  {
    name: 'benchmark',
    description: 'Prefill and decode speed over repeated runs, cost per million tokens, and a noise-aware regression gate against the base branch.',
    inputs: {
      model: { description: 'The .m file.', required: true },
      'prompt-tokens': { description: 'Prompt length.', default: '128' },
      'gen-tokens': { description: 'Generated tokens.', default: '64' },
      threads: THREADS,
      device: DEVICE,
      repeat: { description: 'Runs; the regression rule needs several.', default: '5' },
      baseline: { description: 'A benchmark results JSON to compare with. Default: the baseline store\'s entry for this model and runner.' },
      'max-regression': { description: 'Gate: largest slowdown of the median against the base, in percent (judged with the runs\' spread).' },
      'cost-per-hour': { description: 'The runner\'s price in USD per hour, for $ per million tokens.' },
      concurrency: {
        description:
          'Concurrency levels (comma-separated, e.g. 1,2,4,8): also decode that many generations together at each (continuous batching) and report aggregate and per-stream tokens/s, time to first token, and $ per million tokens at the best level. Not with workers.',
      },
      workers: { description: 'glm-engine worker addresses (host:port, comma-separated or one per line) to run the model across several machines (docs/distributed.md); cost-per-hour is then the whole cluster\'s price.' },
      sync: { description: 'How the nodes exchange partial sums with workers: q80 or f32.', default: 'q80' },
      'worker-secret': { description: 'The shared secret the workers were started with (masked in logs).' },
      ...REPORTING,
      ...SPACES,
    },
    outputs: {
      results: 'The results JSON file.',
      'prefill-tps': 'Median prefill tokens/s.',
      'decode-tps': 'Median decode tokens/s.',
      'usd-per-million-tokens': 'USD per million generated tokens at cost-per-hour (empty without it).',
      'best-concurrency': 'With concurrency: the level of the highest aggregate decode tokens/s.',
      'best-aggregate-tps': 'With concurrency: that aggregate decode tokens/s.',
      'best-usd-per-million-tokens': 'With concurrency and cost-per-hour: USD per million tokens at that level.',
    },
  },
  {
    name: 'publish-to-spaces',
    description: 'Publish a model\'s files to DigitalOcean Spaces: staged, verified by sha256, promoted to models/<model>/<quant>/ with checksums, manifest and model card.',
    inputs: {
      files: { description: 'Files to publish, one per line or comma-separated (.m becomes model.m, .t tokenizer.t).', required: true },
      'model-name': { description: 'Model name in the bucket layout, e.g. GLM-4.5-Air.', required: true },
      quant: { description: 'Quantization name in the layout, e.g. q40.', required: true },
      ...SPACES,
      prefix: { description: 'Release prefix.', default: 'models' },
      acl: { description: 'Object ACL: private or public-read.', default: 'private' },
      promote: { description: 'Promote from staging to the release prefix after verification (true/false).', default: 'true' },
      'source-repo': { description: 'The Hugging Face repository converted, for the manifest and model card.' },
      'source-revision': { description: 'Its revision, for the manifest and model card.' },
      'results-dir': REPORTING['results-dir'] as InputDefinition,
    },
    outputs: {
      urls: 'Object URLs of the published files, one per line.',
      'cdn-urls': 'CDN URLs of the published files, one per line (Spaces regions only).',
      'manifest-url': 'URL of manifest.json.',
    },
  },
  {
    name: 'report',
    description: 'Post or update the run\'s sticky pull-request comment from a results folder (e.g. a fork pull request\'s artifact) and fail when any gate failed.',
    inputs: Object.fromEntries(['results-dir', 'github-token', 'comment', 'comment-key', 'pr-number'].map((k) => [k, REPORTING[k] as InputDefinition])),
    outputs: {},
  },
];
