// The native backend: the hot kernels (f32/bf16/f16 GEMM, Q4_K×Q8_K and Q8_0×Q8_0 integer GEMM, attention)
// in the N-API addon built from native/. Weights are handed over as typed arrays and read in place.
import { checkLinearShapes, type AttentionParams, type Backend } from './backend.js';
import { isColumnMajor, Tensor } from './tensor.js';
import { conv3x3s2Out } from './ops.js';
import { isQuantDType, type QuantDType } from './dtype.js';
import { NativeDevice } from './native_device.js';
import { loadAddon, type NativeAddon } from './native_addon.js';

export type Isa = 'avx512' | 'avx2' | 'scalar';

const WTYPE = { f32: 0, bf16: 1, f16: 2 } as const;
const QFORMAT = { q4_k: 0, q8_0: 1 } as const;
/** Kernel variants whose quantized GEMMs read the x16 layout directly (the scalar build unpacks it per call). */
const X16_ISAS: ReadonlySet<string> = new Set(['avx512', 'avx2']);
// Block geometry of ggml's formats (as src/quant; kept literal so this module does not load the TS quantizers).
const QK_K = 256;
const BLOCK_Q4_K_BYTES = 144;
const QK8_0 = 32;
const BLOCK_Q8_0_BYTES = 34;
/** ArrayBuffers from allocWeights (already on huge pages). */
const onHugePages = new WeakSet<ArrayBufferLike>();
const PLACEMENT_SLAB_BYTES = 64 * 2 ** 20;
const PLACEMENT_ALIGN_BYTES = 64;

export class NativeBackend implements Backend {
  readonly name = 'native' as const;

  /**
   * This backend's DeviceOps (backend v2): glue ops, paged KV, paged attention and LoRA segments in native code.
   * Batch invariant: the GEMMs' accumulation order does not depend on the row count, and paged attention computes
   * each query row over its own prefix in a fixed order.
   */
  readonly device: NativeDevice;
  private slab: { bytes: Uint8Array; used: number } | null = null;  // placementBytes

  private constructor(private readonly lib: NativeAddon) {
    this.device = new NativeDevice(lib, this);
  }

  /** threads: worker threads (default: all cores; 1 runs on the calling thread). Env PHI4MM_ISA forces a variant. */
  static create(threads?: number): NativeBackend {
    const b = new NativeBackend(loadAddon());
    if (threads !== undefined) b.setThreads(threads);
    const forced = process.env.PHI4MM_ISA;
    if (forced) b.setIsa(forced as Isa);
    return b;
  }

  get threads(): number {
    return this.lib.threads();
  }

  /** The pool is process-wide (one addon), so this affects every NativeBackend. */
  setThreads(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new Error(`threads must be a positive integer, got ${n}`);
    this.lib.setThreads(n);
  }

  /**
   * Backs a weight buffer's 2 MiB-aligned interior with transparent huge pages (fewer TLB misses while
   * weights stream from DRAM); returns the bytes advised. The contents are unchanged.
   */
  adviseHugePages(data: ArrayBufferView): number {
    if (onHugePages.has(data.buffer)) return 0; // allocated that way: nothing to collapse
    return this.lib.adviseHugePages(data);
  }

  /**
   * `bytes` zeroed bytes for a weight, on huge pages advised before the first touch (see allocWeights in
   * native/src/addon.cc): reading or quantizing into them needs no MADV_COLLAPSE afterwards.
   */
  allocWeights(bytes: number): Uint8Array {
    const buf = this.lib.allocWeights(bytes);
    onHugePages.add(buf);
    return new Uint8Array(buf);
  }

  /**
   * The weight as the kernels read it best: an x16 quantized [rows, K] weight (rows interleaved by 16, see
   * src/quant/interleave.ts) when the AVX-512 VNNI or AVX2 kernels are in use and the rows split into groups; the
   * tensor itself otherwise. The conversion is in place (same bytes, same size): `w` must not be used after.
   * PHI4MM_WEIGHT_LAYOUT=rows keeps ggml rows (for A/B benchmarks of the two kernel paths).
   */
  preferredLayout(w: Tensor): Tensor {
    if (!isQuantDType(w.dtype) || w.layout === 'x16' || !X16_ISAS.has(this.isa) || w.shape[0]! % 16 !== 0) return w;
    if (process.env.PHI4MM_WEIGHT_LAYOUT === 'rows') return w;
    const [rows, k] = w.shape as [number, number];
    this.lib.interleaveX16(w.data as Uint8Array, QFORMAT[w.dtype], rows, k);
    return new Tensor(w.dtype, w.shape, w.data, undefined, 0, 'x16');
  }

  /**
   * A plain 2-D [rows, cols] weight stored column-major (strides [1, rows]): a new buffer on huge pages holding
   * its transpose, the order the LoRA GEMM reads A and B in (native/src/device_gemm_cols.h). Same values, same
   * logical shape; already column-major tensors come back as they are.
   */
  columnMajor(t: Tensor): Tensor {
    if (isColumnMajor(t)) return t;
    if (t.ndim !== 2 || !(t.dtype === 'f32' || t.dtype === 'bf16' || t.dtype === 'f16')) throw new Error(`columnMajor: needs a 2-D f32/bf16/f16 tensor, got ${t.dtype}${JSON.stringify(t.shape)}`);
    const [rows, cols] = t.shape as [number, number];
    const c = t.contiguous();
    const Ctor = t.dtype === 'f32' ? Float32Array : Uint16Array;
    const at = this.placementBytes(rows * cols * Ctor.BYTES_PER_ELEMENT);
    const dst = new Ctor(at.buffer as ArrayBuffer, at.byteOffset, rows * cols);
    this.transpose(c.data as Float32Array | Uint16Array, c.offset, rows, cols, dst);
    return new Tensor(t.dtype, [rows, cols], dst, [1, rows]);
  }

  /** dst [cols, rows] = the [rows, cols] matrix at element `offset` of src, transposed (2- or 4-byte elements). */
  private transpose(src: Float32Array | Uint16Array, offset: number, rows: number, cols: number, dst: Float32Array | Uint16Array): void {
    const s = src.subarray(offset, offset + rows * cols);
    if (s instanceof Float32Array) this.lib.transpose32(s, rows, cols, dst as Float32Array);
    else this.lib.transpose16(s, rows, cols, dst as Uint16Array);
  }

  /**
   * Memory for a placed weight: cut from huge-page slabs of PLACEMENT_SLAB_BYTES, 64-byte aligned (a LoRA factor
   * is 1–10 MB; each in its own allocWeights would leave up to 2 MiB of its last huge page unused). A slab is freed
   * when no weight in it is referenced any more.
   */
  placementBytes(bytes: number): Uint8Array {
    const need = Math.ceil(Math.max(bytes, 1) / PLACEMENT_ALIGN_BYTES) * PLACEMENT_ALIGN_BYTES;
    if (need > PLACEMENT_SLAB_BYTES / 4) return this.allocWeights(need).subarray(0, bytes);
    if (!this.slab || this.slab.used + need > this.slab.bytes.length) this.slab = { bytes: this.allocWeights(PLACEMENT_SLAB_BYTES), used: 0 };
    const out = this.slab.bytes.subarray(this.slab.used, this.slab.used + bytes);
    this.slab.used += need;
    return out;
  }

  /**
   * A weight as the save format holds it, natively: an x16 quantized weight's ggml rows, or a column-major plain
   * weight's rows (new tensors); `Tensor.rowMajor` / `contiguous` are the plain equivalents.
   */
  rowMajorOf(w: Tensor): Tensor {
    if (isColumnMajor(w)) {
      const [rows, cols] = w.shape as [number, number];
      const out = new (w.dtype === 'f32' ? Float32Array : Uint16Array)(rows * cols);
      this.transpose(w.data as Float32Array | Uint16Array, w.offset, cols, rows, out);  // the buffer holds [cols, rows]
      return new Tensor(w.dtype, w.shape, out);
    }
    if (w.layout !== 'x16') return w;
    const [rows, k] = w.shape as [number, number];
    const out = new Uint8Array((w.data as Uint8Array).length);
    this.lib.deinterleaveX16(w.data as Uint8Array, QFORMAT[w.dtype as 'q4_k' | 'q8_0'], rows, k, out);
    return new Tensor(w.dtype, w.shape, out);
  }

  /** The kernel variant in use. */
  get isa(): Isa {
    return this.lib.isa() as Isa;
  }

  /** Forces a kernel variant (process-wide); throws if this CPU lacks it. */
  setIsa(isa: Isa): void {
    this.lib.setIsa(isa);
  }

  /** The variants this CPU can run, best first. */
  availableIsas(): Isa[] {
    return this.lib.isas() as Isa[];
  }

  linear(x: Float32Array, m: number, w: Tensor, bias?: Float32Array | null, out?: Float32Array): Float32Array {
    const { n, k } = checkLinearShapes(x, m, w, bias);
    const y = out ?? new Float32Array(m * n);
    if (y.length < m * n) throw new Error(`linear: out has ${y.length} values, expected ${m}x${n}`);
    switch (w.dtype) {
      case 'q4_k':
      case 'q8_0':
        this.lib.linearQ(x, m, w.data as Uint8Array, QFORMAT[w.dtype] + (w.layout === 'x16' ? 2 : 0), n, k, bias ?? null, y);
        return y;
      case 'f32':
      case 'bf16':
      case 'f16': {
        // Rows may be strided (a narrowed view); elements within a row must be contiguous.
        const wc = w.strides[1] === 1 || k <= 1 ? w : w.contiguous();
        const ldw = n <= 1 ? k : wc.strides[0]!;
        this.lib.linearF(x, m, wc.data as Float32Array | Uint16Array, WTYPE[w.dtype], wc.offset, ldw, n, k, bias ?? null, y);
        return y;
      }
      default:
        throw new Error(`linear: unsupported weight dtype ${w.dtype} (expected f32, bf16, f16, q4_k or q8_0)`);
    }
  }

  conv3x3s2(x: Float32Array, h: number, w: number, c: number, cin: number, weight: Float32Array, bias: Float32Array, relu: boolean, out?: Float32Array): Float32Array {
    const y = out ?? new Float32Array(conv3x3s2Out(h) * conv3x3s2Out(w) * c);
    this.lib.conv3x3s2(x, h, w, c, cin, weight, bias, relu, y);
    return y;
  }

  conv3x3s2Pair(x: Float32Array, h: number, w: number, c: number, w0: Float32Array, b0: Float32Array, w1: Float32Array, b1: Float32Array, out?: Float32Array): Float32Array {
    const y = out ?? new Float32Array(conv3x3s2Out(conv3x3s2Out(h)) * conv3x3s2Out(conv3x3s2Out(w)) * c);
    this.lib.conv3x3s2Pair(x, h, w, c, w0, b0, w1, b1, y);
    return y;
  }

  swishGate(x: Float32Array, rows: number, w: number, b1: Float32Array | null, b2: Float32Array | null, out?: Float32Array): Float32Array {
    const y = out ?? new Float32Array(rows * w);
    this.lib.swishGate(x, rows, w, b1, b2, y);
    return y;
  }

  silu(x: Float32Array, out?: Float32Array): Float32Array {
    const y = out ?? new Float32Array(x.length);
    this.lib.silu(x, y);
    return y;
  }

  relu(x: Float32Array): Float32Array {
    this.lib.relu(x);
    return x;
  }

  geluTanh(x: Float32Array, out?: Float32Array): Float32Array {
    const y = out ?? new Float32Array(x.length);
    if (y.length < x.length) throw new Error(`geluTanh: out has ${y.length} values, expected ${x.length}`);
    this.lib.geluTanh(x, y);
    return y;
  }

  layerNorm(x: Float32Array, rows: number, dim: number, w: Float32Array, b: Float32Array | null, eps: number, out?: Float32Array): Float32Array {
    if (x.length < rows * dim || w.length !== dim || (b && b.length !== dim)) throw new Error(`layerNorm: expected x [${rows}, ${dim}] and weight/bias [${dim}], got ${x.length}, ${w.length}, ${b?.length ?? 'none'}`);
    const y = out ?? new Float32Array(rows * dim);
    this.lib.layerNorm(x, rows, dim, w, b, eps, y);
    return y;
  }

  /** Whether this CPU runs {@link linearBf16} (AVX512-BF16). */
  get hasBf16Compute(): boolean {
    return this.lib.hasBf16Compute();
  }

  /**
   * y = bf16(x) · Wᵀ (+ bias) for bf16 weights: the activations rounded to bf16 (nearest even), products exact
   * in f32, sums in f32 (vdpbf16ps). Twice the f32 kernel's multiply-adds per instruction; see precision.ts.
   */
  linearBf16(x: Float32Array, m: number, w: Tensor, bias?: Float32Array | null, out?: Float32Array): Float32Array {
    const { n, k } = checkLinearShapes(x, m, w, bias);
    if (w.dtype !== 'bf16') throw new Error(`linearBf16: weight must be bf16, got ${w.dtype}`);
    const y = out ?? new Float32Array(m * n);
    if (y.length < m * n) throw new Error(`linear: out has ${y.length} values, expected ${m}x${n}`);
    const wc = w.strides[1] === 1 || k <= 1 ? w : w.contiguous();
    const ldw = n <= 1 ? k : wc.strides[0]!;
    this.lib.linearBf16(x, m, wc.data as Uint16Array, wc.offset, ldw, n, k, bias ?? null, y);
    return y;
  }

  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, transB = false, out?: Float32Array): Float32Array {
    const c = out ?? new Float32Array(m * n);
    this.lib.matmul(a, b, m, k, n, transB, c);
    return c;
  }

  attention(p: AttentionParams): Float32Array {
    const { tq, tk, nHeads, nKvHeads, headDim } = p;
    if (nKvHeads < 1 || nHeads % nKvHeads !== 0) throw new Error(`attention: ${nHeads} heads is not a multiple of ${nKvHeads} kv heads`);
    if (p.causalOffset !== undefined && (!Number.isInteger(p.causalOffset) || p.causalOffset < 0)) {
      throw new Error(`attention: causalOffset must be a non-negative integer, got ${p.causalOffset}`);
    }
    const out = p.out ?? new Float32Array(tq * nHeads * headDim);
    this.lib.attention(p.q, p.k, p.v, out, tq, tk, nHeads, nKvHeads, headDim, p.scale, p.causalOffset ?? -1, p.mask ?? null, p.bias ?? null);
    return out;
  }

  /**
   * ISQ of a row-major [rows, k] f32 matrix into rows · k / blockSize blocks, rows spread over the pool;
   * byte-identical to src/quant's quantizeRow (ggml's reference quantizers). Non-finite input and block
   * scales that overflow f16 throw, as there. Usable as StrictWeights' `quantize` option.
   */
  quantizeRows(dtype: QuantDType, src: Float32Array, rows: number, k: number, out?: Uint8Array): Uint8Array {
    const fmt = (QFORMAT as Record<string, number | undefined>)[dtype];
    if (fmt === undefined) throw new Error(`quantizeRows: unknown dtype '${dtype}' (expected q4_k or q8_0)`);
    if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(k) || k < 0) throw new Error(`quantizeRows: bad shape [${rows}, ${k}]`);
    if (src.length !== rows * k) throw new Error(`quantizeRows: ${src.length} values do not form a [${rows}, ${k}] matrix`);
    const [bs, bb] = dtype === 'q4_k' ? [QK_K, BLOCK_Q4_K_BYTES] : [QK8_0, BLOCK_Q8_0_BYTES];
    if (k % bs !== 0) throw new Error(`quantizeRows ${dtype}: row length ${k} is not a multiple of the block size ${bs}`);
    const bytes = rows * (k / bs) * bb;
    const q = out ?? this.allocWeights(bytes);
    if (q.length !== bytes) throw new Error(`quantizeRows ${dtype}: out has ${q.length} bytes, expected ${bytes}`);
    this.lib.quantizeRows(fmt, src, rows, k, q);
    return q;
  }

  /** quantizeRows from raw bf16 bits (a checkpoint's bytes), widened per row inside the workers. */
  quantizeRowsBf16(dtype: QuantDType, bits: Uint16Array, rows: number, k: number): Uint8Array {
    const fmt = (QFORMAT as Record<string, number | undefined>)[dtype];
    if (fmt === undefined) throw new Error(`quantizeRowsBf16: unknown dtype '${dtype}' (expected q4_k or q8_0)`);
    if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(k) || k < 0) throw new Error(`quantizeRowsBf16: bad shape [${rows}, ${k}]`);
    if (bits.length !== rows * k) throw new Error(`quantizeRowsBf16: ${bits.length} values do not form a [${rows}, ${k}] matrix`);
    const [bs, bb] = dtype === 'q4_k' ? [QK_K, BLOCK_Q4_K_BYTES] : [QK8_0, BLOCK_Q8_0_BYTES];
    if (k % bs !== 0) throw new Error(`quantizeRowsBf16 ${dtype}: row length ${k} is not a multiple of the block size ${bs}`);
    const q = this.allocWeights(rows * (k / bs) * bb);
    this.lib.quantizeRows(fmt, bits, rows, k, q, true);
    return q;
  }

  /** bf16 bits → f32 (exact), spread over the pool. */
  bf16ToF32(src: Uint16Array, out?: Float32Array): Float32Array {
    const y = out ?? new Float32Array(src.length);
    if (y.length !== src.length) throw new Error(`bf16ToF32: out has ${y.length} values, expected ${src.length}`);
    this.lib.bf16ToF32(src, y);
    return y;
  }

  /** e^x with the attention softmax's vectorized exp of the current ISA; for its accuracy test. */
  expF32(x: Float32Array, out?: Float32Array): Float32Array {
    const y = out ?? new Float32Array(x.length);
    if (y.length !== x.length) throw new Error(`expF32: out has ${y.length} values, expected ${x.length}`);
    this.lib.expF32(x, y);
    return y;
  }

  /** The addon's Q8_K activation quantizer (bit-exact with src/quant's quantizeRowQ8_K); for tests. */
  quantizeQ8K(x: Float32Array, out: Uint8Array): Uint8Array {
    this.lib.quantizeQ8K(x, out);
    return out;
  }

  /** The addon's Q8_0 activation quantizer (bit-exact with src/quant's quantizeRowQ8_0); for tests. */
  quantizeQ80(x: Float32Array, out: Uint8Array): Uint8Array {
    this.lib.quantizeQ80(x, out);
    return out;
  }
}

/**
 * The addon's ISQ as a plain function (StrictWeights' `quantize` option), or undefined when the addon is not
 * built, so the loader falls back to the TypeScript quantizers.
 */
export function nativeRowQuantizer(): ((dtype: QuantDType, src: Float32Array, rows: number, k: number) => Uint8Array) | undefined {
  let b: NativeBackend;
  try {
    b = NativeBackend.create();
  } catch {
    return undefined;
  }
  return (dtype, src, rows, k) => b.quantizeRows(dtype, src, rows, k);
}
