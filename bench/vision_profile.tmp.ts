import { rawToF32 } from '../src/io/safetensors.js';
import { StrictWeights, type TensorProvider } from '../src/nn/weights.js';
import { IMAGE_EMBED_PREFIX, Phi4MMImageEmbedding, type VisionConfig } from '../src/models/phi4mm/vision.js';
import { createBackend } from '../src/tensor/backend.js';
import { withComputePrecision } from '../src/tensor/precision.js';
import { tensorBytes } from './make-checkpoint.js';
import { REAL_TEXT, REAL_VISION, realTensorSpecs, type TensorSpec } from './real_config.js';
const layers = Number(process.env.L ?? 27);
const cfg: VisionConfig = { ...REAL_VISION, num_hidden_layers: layers, layer_norm_eps: 1e-6, crop_size: REAL_VISION.image_size, image_token_id: 200010 };
const layerOf = (n: string) => Number(/\.encoder\.layers\.(\d+)\./.exec(n)?.[1] ?? -1);
const specs = new Map<string, TensorSpec>(realTensorSpecs().filter((s) => s.name.startsWith(`${IMAGE_EMBED_PREFIX}.`) && layerOf(s.name) < layers).map((s) => [s.name, s]));
const p: TensorProvider = { where: 'x', names: () => [...specs.keys()], info: (n) => ({ dtype: 'BF16', shape: specs.get(n)!.shape }), readRaw: (n) => tensorBytes(specs.get(n)!, 1), readF32: (n) => rawToF32(tensorBytes(specs.get(n)!, 1), 'BF16') };
const ws = new StrictWeights(p, (_n, shape) => (shape.length === 2 ? 'bf16' : 'f32'));
const model = new Phi4MMImageEmbedding(ws, cfg, REAL_TEXT.hidden_size); ws.finish();
const side = model.side, s = cfg.image_size;
const pixels = new Float32Array(3 * s * s); let r = 12345;
for (let i = 0; i < pixels.length; i++) pixels[i] = ((r = (Math.imul(r, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const mask = new Float32Array(side * side).fill(1).fill(0, 24 * side);
for (const prec of ['f32', 'bf16'] as const) {
  const base = await createBackend('native', Number(process.env.T ?? 1));
  const be0 = withComputePrecision(base, prec);
  const be = Object.create(be0); const t = { linear: 0, attention: 0 };
  be.linear = (...a: any[]) => { const t0 = performance.now(); const y = (be0.linear as any)(...a); t.linear += performance.now() - t0; return y; };
  be.attention = (...a: any[]) => { const t0 = performance.now(); const y = (be0.attention as any)(...a); t.attention += performance.now() - t0; return y; };
  model.cropFeatures(be, pixels, mask); t.linear = 0; t.attention = 0;
  const t0 = performance.now(); model.cropFeatures(be, pixels, mask); const tot = performance.now() - t0;
  console.log(prec, 'total', tot.toFixed(0), 'linear', t.linear.toFixed(0), 'attention', t.attention.toFixed(0), 'other', (tot - t.linear - t.attention).toFixed(0));
}
