// The narrow compute interface. Only the hot kernels live behind it (GEMM/GEMV, attention); small ops stay
// in TypeScript (./ops.ts). Two implementations: `reference` (pure TS, the oracle in tests) and `native`
// (the N-API addon in native/), chosen by `createBackend`.
import type { Tensor } from './tensor.js';
import type { DeviceOps } from './device.js';

export interface AttentionParams {
  q: Float32Array; // [Tq, nHeads, headDim]
  k: Float32Array; // [Tk, nKvHeads, headDim]
  v: Float32Array; // [Tk, nKvHeads, headDim]
  tq: number;
  tk: number;
  nHeads: number;
  /** nHeads must be a multiple of nKvHeads (GQA: head h reads kv head floor(h / (nHeads / nKvHeads))). */
  nKvHeads: number;
  headDim: number;
  /** Multiplies q·k before the additive terms (usually headDim^-0.5). */
  scale: number;
  /** When set, query i sits at absolute position causalOffset + i and sees keys j <= causalOffset + i. */
  causalOffset?: number;
  /** Additive [Tq, Tk], broadcast over heads (key padding masks, the conformer's +1/0 mask). */
  mask?: Float32Array;
  /** Additive [nHeads, Tq, Tk] (the conformer's relative-position bias). */
  bias?: Float32Array;
  out?: Float32Array; // [Tq, nHeads, headDim]
}

export interface Backend {
  readonly name: 'reference' | 'native';
  /** Worker threads used by the kernels (>= 1). */
  readonly threads: number;
  /** The kernel variant in use, where a backend has several (the native one: 'avx512', 'avx2', 'scalar', ...). */
  readonly isa?: string;
  setThreads(n: number): void;
  /**
   * y = x · Wᵀ (+ bias): x [M, K] f32, W [N, K] of dtype f32 | bf16 | f16 | q4_k | q8_0, y [M, N].
   * Quantized weights are multiplied with activations quantized per block (Q8_K for Q4_K, Q8_0 for Q8_0)
   * in the native backend; the reference backend dequantizes rows and multiplies in f32.
   */
  linear(x: Float32Array, m: number, w: Tensor, bias?: Float32Array | null, out?: Float32Array): Float32Array;
  /** C [M, N] = A [M, K] · B [K, N] (or Bᵀ when transB, B given as [N, K]); all f32, contiguous. */
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, transB?: boolean, out?: Float32Array): Float32Array;
  /** Scaled dot-product attention with softmax in f32; returns [Tq, nHeads, headDim]. */
  attention(p: AttentionParams): Float32Array;
  /** gelu_pytorch_tanh element-wise, x [n] → out [n] (out may be x). The encoders' activation. */
  geluTanh(x: Float32Array, out?: Float32Array): Float32Array;
  /** The audio subsampling conv, see ops.conv3x3s2: x [h, w, cin] → [⌈h/2⌉, ⌈w/2⌉, c]. */
  conv3x3s2(x: Float32Array, h: number, w: number, c: number, cin: number, weight: Float32Array, bias: Float32Array, relu: boolean, out?: Float32Array): Float32Array;
  /**
   * conv3x3s2(x, h, w, c, 1, w0, b0, relu) then conv3x3s2(·, c, c, w1, b1, no relu): x [h, w] → [h'', w'', c], the
   * same values as the two calls, without materializing the first's [h', w', c] image.
   */
  conv3x3s2Pair(x: Float32Array, h: number, w: number, c: number, w0: Float32Array, b0: Float32Array, w1: Float32Array, b1: Float32Array, out?: Float32Array): Float32Array;
  /** ops.swishGate: out [rows, w] = (x[:, :w] (+ b1)) · swish(x[:, w:] (+ b2)), x [rows, 2w]; the same bits on every backend. */
  swishGate(x: Float32Array, rows: number, w: number, b1: Float32Array | null, b2: Float32Array | null, out?: Float32Array): Float32Array;
  /** ops.silu element-wise, x [n] → out [n] (out may be x); the same bits on every backend. */
  silu(x: Float32Array, out?: Float32Array): Float32Array;
  /** x = max(x, 0) in place; returns x. */
  relu(x: Float32Array): Float32Array;
  /** Per-row LayerNorm of x [rows, dim] (out may be x): (x − mean) / sqrt(var + eps) · w (+ b). */
  layerNorm(x: Float32Array, rows: number, dim: number, w: Float32Array, b: Float32Array | null, eps: number, out?: Float32Array): Float32Array;
  /** Backend v2 (src/tensor/device.ts): device buffers, glue ops, paged KV; what the language model runs on. */
  readonly device: DeviceOps;
}

export type BackendKind = 'auto' | 'native' | 'reference';

let warned = false;
let current: Backend | null = null;

/**
 * 'auto' uses the native addon when it loads and falls back to the reference backend with one warning
 * naming the cause; 'native' throws if the addon is unavailable.
 */
export async function createBackend(kind: BackendKind = 'auto', threads?: number): Promise<Backend> {
  if (kind !== 'reference') {
    try {
      const { NativeBackend } = await import('./native.js');
      const b = NativeBackend.create(threads);
      return b;
    } catch (e) {
      if (kind === 'native') throw new Error(`native backend unavailable: ${(e as Error).message}. Run \`npm install\` (it builds native/ with node-gyp) or use backend 'reference'.`);
      if (!warned) {
        warned = true;
        process.emitWarning(`phi4mm: native addon unavailable (${(e as Error).message}); using the pure-TypeScript reference backend (~30x slower)`);
      }
    }
  }
  const { ReferenceBackend } = await import('./reference.js');
  return new ReferenceBackend(threads ?? 1);
}

/** The process-wide default backend (created on first use with 'auto'). */
export async function defaultBackend(): Promise<Backend> {
  current ??= await createBackend('auto');
  return current;
}

export function setDefaultBackend(b: Backend): void {
  current = b;
}

export function checkLinearShapes(x: Float32Array, m: number, w: Tensor, bias?: Float32Array | null): { n: number; k: number } {
  if (w.ndim !== 2) throw new Error(`linear: weight must be 2-D [N, K], got ${JSON.stringify(w.shape)}`);
  const n = w.shape[0]!, k = w.shape[1]!;
  if (x.length < m * k) throw new Error(`linear: input has ${x.length} values, expected ${m}x${k}`);
  if (bias && bias.length !== n) throw new Error(`linear: bias has ${bias.length} values, expected ${n}`);
  return { n, k };
}
