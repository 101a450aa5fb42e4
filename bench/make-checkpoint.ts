// Writes a random-weight checkpoint with the real shapes, tensor names, dtype (bf16) and sharding (3 shards,
// original hub layout with both LoRA adapters inside) of microsoft/Phi-4-multimodal-instruct, plus the
// config, generation config, preprocessor config and tokenizer files, so speed and memory can be measured
// offline. Deterministic from a seed; streamed tensor by tensor (peak memory ≈ the largest tensor, 1.2 GB).
//
//   npx tsx bench/make-checkpoint.ts --out /tmp/phi4mm-real [--seed 1] [--layers N]  (N < 32: a shallower LM)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeSafetensors, type StWriteTensor } from '../src/io/safetensors.js';
import { writeTokenizerFiles } from '../src/text/tokenizer_files.js';
import { realConfigJson, realTensorSpecs, type TensorSpec } from './real_config.js';

const SHARDS = 3;

/** FNV-1a of the name mixed with the seed: each tensor gets its own stream, independent of write order. */
function seedFor(name: string, seed: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0 || 1;
}

/** bf16 bytes of a tensor: uniform with the std of a sane init (so activations stay finite end to end). */
export function tensorBytes(spec: TensorSpec, seed: number): Uint8Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const out = new Uint16Array(n);
  if (spec.kind === 'ones') return new Uint8Array(out.fill(0x3f80).buffer);
  if (spec.kind === 'zeros') return new Uint8Array(out.buffer);
  const fanIn = spec.shape.length > 1 ? spec.shape.slice(1).reduce((a, b) => a * b, 1) : 1;
  const std = spec.kind === 'matrix' ? 1 / Math.sqrt(fanIn) : 0.02;
  const amp = Math.sqrt(3) * std * 2;
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  let s = seedFor(spec.name, seed);
  for (let i = 0; i < n; i++) {
    // xorshift32: fast and good enough for weights nobody reads
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    f[0] = (s / 4294967296 - 0.5) * amp;
    out[i] = u[0]! >>> 16;
  }
  return new Uint8Array(out.buffer);
}

export function makeCheckpoint(outDir: string, opts: { seed?: number; layers?: number; log?: (s: string) => void } = {}): void {
  const seed = opts.seed ?? 1;
  const log = opts.log ?? ((s: string) => console.log(s));
  mkdirSync(outDir, { recursive: true });
  const cfg = realConfigJson();
  let specs = realTensorSpecs();
  if (opts.layers !== undefined) {
    cfg['num_hidden_layers'] = opts.layers;
    specs = specs.filter((s) => { const m = /^model\.layers\.(\d+)\./.exec(s.name); return !m || Number(m[1]) < opts.layers!; });
  }
  const bytesOf = (s: TensorSpec) => s.shape.reduce((a, b) => a * b, 1) * 2;
  const total = specs.reduce((a, s) => a + bytesOf(s), 0);
  const weightMap: Record<string, string> = {};
  let idx = 0;
  for (let k = 0; k < SHARDS; k++) {
    const file = `model-${String(k + 1).padStart(5, '0')}-of-${String(SHARDS).padStart(5, '0')}.safetensors`;
    const shard: StWriteTensor[] = [];
    let acc = 0;
    // Fill each shard to about a third of the bytes; the last takes the rest.
    while (idx < specs.length && (k === SHARDS - 1 || acc < total / SHARDS)) {
      const s = specs[idx++]!;
      acc += bytesOf(s);
      weightMap[s.name] = file;
      shard.push({ name: s.name, dtype: 'BF16', shape: s.shape, data: () => tensorBytes(s, seed) });
    }
    const t0 = Date.now();
    writeSafetensors(join(outDir, file), shard, { format: 'pt' });
    log(`${file}: ${shard.length} tensors, ${(acc / 2 ** 30).toFixed(2)} GiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  writeFileSync(join(outDir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  writeFileSync(join(outDir, 'config.json'), JSON.stringify(cfg, null, 2));
  writeFileSync(join(outDir, 'generation_config.json'), JSON.stringify({ _from_model_config: true, bos_token_id: 199999, eos_token_id: [200020, 199999], pad_token_id: 199999 }, null, 2));
  writeFileSync(join(outDir, 'preprocessor_config.json'), JSON.stringify({
    image_processor_type: 'Phi4MMImageProcessor', processor_class: 'Phi4MMProcessor', feature_extractor_type: 'Phi4MMAudioFeatureExtractor',
    audio_compression_rate: 8, audio_downsample_rate: 1, audio_feat_stride: 1, dynamic_hd: 36,
  }, null, 2));
  writeTokenizerFiles(outDir);
  log(`wrote ${specs.length} tensors (${(total / 2 ** 30).toFixed(2)} GiB) to ${outDir}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, seed: { type: 'string' }, layers: { type: 'string' } } });
  if (!values.out) {
    console.error('usage: npx tsx bench/make-checkpoint.ts --out <dir> [--seed N] [--layers N]');
    process.exit(2);
  }
  makeCheckpoint(values.out, { seed: Number(values.seed ?? 1), ...(values.layers ? { layers: Number(values.layers) } : {}) });
}
