// Speed of the image branch at real size: a SigLIP-so400m/14-448 tower (hidden 1152, intermediate 4304,
// 27 layers of which 26 run, 16 heads) + projection to the LM hidden size 3072, with deterministic random
// weights generated in memory (same generator and shapes as bench/make-checkpoint.ts). Times one 448×448
// crop (with a partially padded patch mask, as most HD crops have) through encoder + pooling, and the
// projection of its 256 tokens, per thread count. Prints a table, then one JSON line.
//
//   npx tsx bench/vision.ts [--backend auto|native|reference] [--threads 1,2] [--layers 27]
//                           [--weights bf16|f32|q8_0|q4_k] [--reps 2] [--warmup 1] [--seed 1]
// --layers N builds a tower of N layers (N-1 run); use a small N with the slow reference backend.
import { parseArgs } from 'node:util';
import { rawToF32 } from '../src/io/safetensors.js';
import { StrictWeights, type StorageDType, type TensorProvider } from '../src/nn/weights.js';
import { IMAGE_EMBED_PREFIX, Phi4MMImageEmbedding, type VisionConfig } from '../src/models/phi4mm/vision.js';
import { createBackend, type BackendKind } from '../src/tensor/backend.js';
import { backendWeightOptions } from '../src/api/load.js';
import { tensorBytes } from './make-checkpoint.js';
import { REAL_TEXT, REAL_VISION, realTensorSpecs, type TensorSpec } from './real_config.js';

const VALID_ROWS = 24; // patch rows of the timed crop that hold image (the rest is padding, masked as keys)

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string', default: 'auto' },
    threads: { type: 'string', default: '1,2' },
    layers: { type: 'string', default: String(REAL_VISION.num_hidden_layers) },
    weights: { type: 'string', default: 'bf16' },
    reps: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '1' },
    seed: { type: 'string', default: '1' },
  },
});
const layers = Number(args.layers), reps = Number(args.reps), warmup = Number(args.warmup), seed = Number(args.seed);
const threads = args.threads.split(',').map(Number);
const storage = args.weights as StorageDType;
if (!(layers >= 1 && layers <= REAL_VISION.num_hidden_layers) || !(reps >= 1) || !threads.every((t) => t >= 1) || !['bf16', 'f32', 'q8_0', 'q4_k'].includes(storage))
  throw new Error(`bad arguments ${JSON.stringify(args)}`);

const cfg: VisionConfig = { ...REAL_VISION, num_hidden_layers: layers, layer_norm_eps: 1e-6, crop_size: REAL_VISION.image_size, image_token_id: 200010 };

/** Lazily generated bf16 tensors of the image branch: only what the model takes is ever materialised. */
function randomImageBranch(): TensorProvider {
  const layerOf = (n: string) => Number(/\.encoder\.layers\.(\d+)\./.exec(n)?.[1] ?? -1);
  const specs = new Map<string, TensorSpec>(realTensorSpecs().filter((s) => s.name.startsWith(`${IMAGE_EMBED_PREFIX}.`) && layerOf(s.name) < layers).map((s) => [s.name, s]));
  const spec = (n: string) => specs.get(n) ?? (() => { throw new Error(`no tensor ${n}`); })();
  return {
    where: 'random real-size image branch',
    names: () => [...specs.keys()],
    info: (n) => ({ dtype: 'BF16', shape: spec(n).shape }),
    readRaw: (n) => tensorBytes(spec(n), seed),
    readF32: (n) => rawToF32(tensorBytes(spec(n), seed), 'BF16'),
  };
}

const t0 = performance.now();
// Quantized weights are made and placed as a load makes them (native ISQ, x16 rows where the kernels read them).
const ws = new StrictWeights(randomImageBranch(), (_n, shape) => (shape.length === 2 ? storage : 'f32'), backendWeightOptions(await createBackend(args.backend as BackendKind, 1)));
const model = new Phi4MMImageEmbedding(ws, cfg, REAL_TEXT.hidden_size);
const report = ws.finish();
const loadS = (performance.now() - t0) / 1000;

const side = model.side, s = cfg.image_size;
const pixels = new Float32Array(3 * s * s);
let r = 12345;
for (let i = 0; i < pixels.length; i++) pixels[i] = ((r = (Math.imul(r, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1; // [-1, 1) like normalised pixels
const mask = new Float32Array(side * side).fill(1).fill(0, VALID_ROWS * side);

const ms = (f: () => void): number => {
  const t = performance.now();
  f();
  return performance.now() - t;
};
const rows: Array<{ backend: string; threads: number; encoder_ms: number; projection_ms: number; total_ms: number }> = [];
for (const n of threads) {
  const be = await createBackend(args.backend as BackendKind, n);
  let feats: Float32Array = new Float32Array();
  for (let i = 0; i < warmup; i++) feats = model.cropFeatures(be, pixels, mask);
  const enc: number[] = [], proj: number[] = [];
  for (let i = 0; i < reps; i++) {
    enc.push(ms(() => (feats = model.cropFeatures(be, pixels, mask))));
    proj.push(ms(() => model.project(be, feats, feats.length / model.dim)));
  }
  if (!feats.every(Number.isFinite)) throw new Error('non-finite features: the random weights blew up');
  const e = Math.min(...enc), p = Math.min(...proj);
  rows.push({ backend: be.name, threads: be.threads, encoder_ms: +e.toFixed(1), projection_ms: +p.toFixed(1), total_ms: +(e + p).toFixed(1) });
}

const mib = Object.fromEntries(Object.entries(report.bytes).map(([k, v]) => [k, +(v / 2 ** 20).toFixed(1)]));
console.log(`image branch: ${layers} layers (${layers - 1} run), hidden ${cfg.hidden_size}, LM hidden ${REAL_TEXT.hidden_size}, weights ${storage} (${JSON.stringify(mib)} MiB), load ${loadS.toFixed(1)} s`);
console.log(`one ${s}x${s} crop (${VALID_ROWS}/${side} valid patch rows), best of ${reps}:`);
console.log('backend    threads  encoder+pool ms  projection(256 tok) ms  total ms');
for (const x of rows) console.log(`${x.backend.padEnd(10)} ${String(x.threads).padStart(7)}  ${x.encoder_ms.toFixed(1).padStart(15)}  ${x.projection_ms.toFixed(1).padStart(22)}  ${x.total_ms.toFixed(1).padStart(8)}`);
console.log(JSON.stringify({ bench: 'vision', layers, layers_run: layers - 1, weights: storage, weight_mib: mib, reps, results: rows }));
