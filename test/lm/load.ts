// Shared by the LM tests: the tiny golden checkpoint's decoder, either layout, strict loading with the
// encoders' tensors (other modules) ignored.
import { join } from 'node:path';
import { GOLDEN_DIR } from '../helpers/golden.js';
import { openCheckpoint } from '../../src/models/phi4mm/checkpoint.js';
import { StrictWeights, type StoragePolicy } from '../../src/nn/weights.js';
import { Phi4MiniDecoder } from '../../src/models/phi4mm/decoder.js';
import type { TextConfig } from '../../src/models/phi4mm/config.js';

export const modelDir = (layout: 'orig' | 'hf') => join(GOLDEN_DIR, layout === 'orig' ? 'model_orig' : 'model_hf');
export const isEncoderTensor = (n: string) => n.startsWith('model.embed_tokens_extend.');

const cache = new Map<string, Phi4MiniDecoder>();

/** `text` overrides config fields (e.g. a small original_max_position_embeddings to exercise LongRoPE cheaply). */
export function loadDecoder(layout: 'orig' | 'hf', opts: { policy?: StoragePolicy; text?: Partial<TextConfig>; key?: string } = {}): Phi4MiniDecoder {
  const key = `${layout}:${opts.key ?? ''}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const { config, provider } = openCheckpoint(modelDir(layout));
  try {
    const ws = new StrictWeights(provider, opts.policy);
    ws.ignore(isEncoderTensor);
    const lm = new Phi4MiniDecoder(ws, { ...config.text, ...opts.text }, { vision: config.vision_lora, speech: config.speech_lora });
    ws.finish();
    cache.set(key, lm);
    return lm;
  } finally {
    provider.close();
  }
}
