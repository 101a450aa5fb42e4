// Builds a complete tiny checkpoint folder for end-to-end tests: the golden tiny model's weights and config
// (real structure, real tensor names) plus the tokenizer, generation and preprocessor files that a hub
// checkpoint has and the fixture folder lacks.
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTokenizerFiles } from '../../src/text/tokenizer_files.js';
import { GOLDEN_DIR } from './golden.js';

let cached: string | null = null;

export function tinyCheckpoint(layout: 'orig' | 'hf' = 'orig'): string {
  if (layout === 'orig' && cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), `phi4mm-tiny-${layout}-`));
  const src = join(GOLDEN_DIR, layout === 'orig' ? 'model_orig' : 'model_hf');
  copyFileSync(join(src, 'config.json'), join(dir, 'config.json'));
  copyFileSync(join(src, 'model.safetensors'), join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 199999, eos_token_id: [200020, 199999], pad_token_id: 199999 }));
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ audio_compression_rate: 8, audio_downsample_rate: 1, audio_feat_stride: 1, dynamic_hd: 36 }));
  writeTokenizerFiles(dir);
  if (layout === 'orig') cached = dir;
  return dir;
}
