// The N-API addon built from native/: its raw surface (argument order as in native/src) and the loader. The
// typed wrappers are NativeBackend (src/tensor/native.ts) and NativeDevice (src/tensor/native_device.ts).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ADDON_FILE = 'native/build/Release/phi4mm_native.node';

/** The raw addon surface (see native/src/addon.cc, glue.cc and paged_attention.cc for the argument order). */
export interface NativeAddon {
  linearF(x: Float32Array, m: number, w: Float32Array | Uint16Array, wtype: number, wOffset: number, ldw: number, n: number, k: number, bias: Float32Array | null, out: Float32Array): void;
  linearQ(x: Float32Array, m: number, w: Uint8Array, format: number, n: number, k: number, bias: Float32Array | null, out: Float32Array): void;
  linearBf16(x: Float32Array, m: number, w: Uint16Array, wOffset: number, ldw: number, n: number, k: number, bias: Float32Array | null, out: Float32Array): void;
  hasBf16Compute(): boolean;
  geluTanh(x: Float32Array, out: Float32Array): void;
  conv3x3s2(x: Float32Array, h: number, w: number, c: number, cin: number, weight: Float32Array, bias: Float32Array, relu: boolean, out: Float32Array): void;
  conv3x3s2Pair(x: Float32Array, h: number, w: number, c: number, w0: Float32Array, b0: Float32Array, w1: Float32Array, b1: Float32Array, out: Float32Array): void;
  swishGate(x: Float32Array, rows: number, w: number, b1: Float32Array | null, b2: Float32Array | null, out: Float32Array): void;
  silu(x: Float32Array, out: Float32Array): void;
  relu(x: Float32Array): void;
  layerNorm(x: Float32Array, rows: number, dim: number, w: Float32Array, b: Float32Array | null, eps: number, out: Float32Array): void;
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, transB: boolean, out: Float32Array): void;
  attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, tq: number, tk: number, nHeads: number, nKvHeads: number, headDim: number, scale: number, causalOffset: number, mask: Float32Array | null, bias: Float32Array | null): void;
  quantizeQ8K(x: Float32Array, out: Uint8Array): void;
  quantizeQ80(x: Float32Array, out: Uint8Array): void;
  quantizeRows(format: number, src: Float32Array | Uint16Array, rows: number, k: number, out: Uint8Array, srcBf16?: boolean): void;
  bf16ToF32(src: Uint16Array, out: Float32Array): void;
  adviseHugePages(buf: ArrayBufferView): number;
  allocWeights(bytes: number): ArrayBuffer;
  interleaveX16(data: Uint8Array, format: number, rows: number, k: number): void;
  deinterleaveX16(src: Uint8Array, format: number, rows: number, k: number, out: Uint8Array): void;
  expF32(x: Float32Array, out: Float32Array): void;
  /** Temperature softmax, bit-identical to src/text/sampling.ts's softmaxShiftedTs (native/src/sampling_napi.cc). */
  softmaxShifted(scores: Float32Array, cand: Int32Array | null, m: number, max: number, temperature: number, out: Float64Array): number;
  expF64(x: Float64Array, out: Float64Array): void;
  /** draw()'s filters and walk with random number r; the id, or −1 when no score is finite (src/text/sampling.ts's drawTs). */
  sampleDraw(scores: Float32Array, temperature: number, topK: number, topP: number, minP: number, r: number): number;
  /** Σ exp(scores[i] − max) over i < n with a finite-or-+∞ score, in order (src/text/sampling.ts's sumExpShiftedTs). */
  sumExpShifted(scores: Float32Array, n: number, max: number): number;
  /** The first index of the largest score above −∞, or −1 (src/text/sampling.ts's argmax). */
  argmaxScores(scores: Float32Array): number;
  /** dst = src with NaN replaced by −∞ (src/text/sampling.ts's penalizedScores). */
  copyMaskNaN(src: Float32Array, dst: Float32Array): void;
  setThreads(n: number): void;
  threads(): number;
  setIsa(isa: string): void;
  isa(): string;
  isas(): string[];
  // Device ops (backend v2, src/tensor/native_device.ts).
  rmsNorm(x: Float32Array, rows: number, dim: number, w: Float32Array, eps: number, out: Float32Array): void;
  rope(x: Float32Array, rows: number, rowStride: number, offset: number, nHeads: number, headDim: number, rotaryDim: number, cos: Float32Array, sin: Float32Array): void;
  swiglu(gu: Float32Array, rows: number, inter: number, out: Float32Array): void;
  addInPlace(x: Float32Array, y: Float32Array, n: number, alpha: number): void;
  embedding(table: Float32Array | Uint16Array | Uint8Array, type: number, elemOffset: number, vocab: number, dim: number, ids: Int32Array, out: Float32Array): void;
  gatherRows(x: Float32Array, dim: number, rows: Int32Array, out: Float32Array): void;
  loraAdd(x: Float32Array, m: number, k: number, out: Float32Array, n: number, segs: (number | Float32Array | Uint16Array)[]): void;
  transpose16(src: Uint16Array, rows: number, cols: number, dst: Uint16Array): void;
  transpose32(src: Float32Array, rows: number, cols: number, dst: Float32Array): void;
  kvAlloc(type: number, layers: number, numBlocks: number, blockSize: number, nKvHeads: number, headDim: number): unknown;
  kvWrite(kv: unknown, layer: number, src: Float32Array, rowStride: number, kOffset: number, vOffset: number, meta: Int32Array, tables: Int32Array, nSeqs: number): void;
  kvCopyBlocks(kv: unknown, src: Int32Array, dst: Int32Array): void;
  kvReadBlock(kv: unknown, layer: number, which: number, block: number, out: Uint8Array): void;
  pagedAttention(q: Float32Array, qStride: number, qOffset: number, kv: unknown, layer: number, meta: Int32Array, tables: Int32Array, nHeads: number, scale: number, out: Float32Array, nSeqs: number): void;
}
let addon: NativeAddon | null = null;

/**
 * Loads the addon from the project root: this file is src/tensor/native_addon.ts under tsx/vitest and
 * dist/src/tensor/native_addon.js after `tsc`, so the root is two or three levels up.
 */
export function loadAddon(): NativeAddon {
  if (addon) return addon;
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '../..', ADDON_FILE), join(here, '../../..', ADDON_FILE)];
  const path = candidates.find((p) => existsSync(p));
  if (!path) throw new Error(`native addon not built (looked for ${candidates.join(' and ')}); run \`npm install\` or \`node scripts/build-native.mjs\``);
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    throw new Error(`native addon at ${path} failed to load: ${(e as Error).message}`);
  }
  return addon;
}
