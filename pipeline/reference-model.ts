/**
 * The trained reference model shipped with glm-dllama: a small GLM-4.5-layout checkpoint trained on the King
 * James Bible by scripts/train-reference/train.py (see its model card). The demo, the README examples and the
 * quality reference figures (scripts/reference-model.ts, docs/conversion-guide.md) use it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packageRoot } from '../engine/native.js';
import { loadTokenizer } from '../tokenizer/load.js';

export const REFERENCE_NAME = 'glm45-kjv-tiny';
/** The Hugging Face checkpoint directory (config.json, model.safetensors, tokenizer files, model card). */
export const REFERENCE_MODEL_DIR: string = join(packageRoot(), 'models', 'reference', REFERENCE_NAME);
/** Held-out chapters (never trained on), in the checkpoint directory. */
export const REFERENCE_EXCERPT: string = join(REFERENCE_MODEL_DIR, 'heldout-excerpt.txt');

/** Token ids of the held-out excerpt with the checkpoint's own tokenizer (no special tokens), as perplexity reads text. */
export async function referenceExcerptIds(dir: string = REFERENCE_MODEL_DIR): Promise<number[]> {
  const { tokenizer } = await loadTokenizer(dir);
  return tokenizer.encodeIds(await readFile(join(dir, 'heldout-excerpt.txt'), 'utf8'), { addSpecialTokens: false });
}
