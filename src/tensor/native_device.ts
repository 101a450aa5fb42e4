// The native backend's DeviceOps (backend v2, src/tensor/device.ts): every op is one call into the addon
// (native/src/glue.cc, paged_attention.cc), so a decode step crosses into native code a handful of times per
// layer and runs no per-element TypeScript. Buffers are host Float32Arrays (the addon reads them in place);
// the KV pool is native memory behind an opaque handle, never copied to the host.
import type { Buf, DeviceOps, KvSpec, KvStore, LoraSegment, SeqRows } from './device.js';
import type { NativeAddon, NativeBackend } from './native.js';
import { isQuantDType } from './dtype.js';
import type { Tensor } from './tensor.js';

/** A device buffer of the CPU backends: a host Float32Array. */
export class HostBuf implements Buf {
  constructor(readonly data: Float32Array) {}
  get size(): number {
    return this.data.length;
  }
}

const KV_DTYPE = { f32: 0, f16: 1, q8_0: 2 } as const;
const PLAIN_WTYPE = { f32: 0, bf16: 1, f16: 2 } as const;
const EMB_TYPE = { f32: 0, bf16: 1, f16: 2, q4_k: 3, q8_0: 4 } as const;
const KV_ROW_BYTES = { f32: (d: number) => 4 * d, f16: (d: number) => 2 * d, q8_0: (d: number) => (d / 32) * 34 } as const;

/** The paged KV pool: native memory (freed when this object is collected). */
export class NativeKvStore implements KvStore {
  constructor(readonly spec: KvSpec, readonly bytes: number, readonly handle: unknown) {}
}

function host(b: Buf, what: string): Float32Array {
  if (!(b instanceof HostBuf)) throw new Error(`${what}: not a buffer of the native backend (allocate it with this backend's alloc)`);
  return b.data;
}

function pool(kv: KvStore): NativeKvStore {
  if (!(kv instanceof NativeKvStore)) throw new Error('KV store was not allocated by the native backend (use its allocKv)');
  return kv;
}

/** The ragged batch as the addon reads it: [rowStart, rows, start, tableOffset, tableLength] per sequence. */
function encodeSeqs(seqs: readonly SeqRows[]): { meta: Int32Array; tables: Int32Array } {
  const meta = new Int32Array(seqs.length * 5);
  let total = 0;
  for (const s of seqs) total += s.blockTable.length;
  const tables = new Int32Array(total);
  let o = 0;
  seqs.forEach((s, i) => {
    meta.set([s.rowStart, s.rows, s.start, o, s.blockTable.length], i * 5);
    tables.set(s.blockTable, o);
    o += s.blockTable.length;
  });
  return { meta, tables };
}

export class NativeDevice implements DeviceOps {
  // Parameters that must be contiguous for the addon, copied once per tensor object.
  private readonly contiguous = new WeakMap<Tensor, Tensor>();

  constructor(private readonly lib: NativeAddon, private readonly backend: NativeBackend) {}

  alloc(size: number): HostBuf {
    if (!Number.isInteger(size) || size < 0) throw new Error(`alloc: size must be a non-negative integer, got ${size}`);
    return new HostBuf(new Float32Array(size));
  }

  upload(src: Float32Array, dst: Buf, dstOffset = 0): void {
    const d = host(dst, 'upload');
    if (dstOffset < 0 || dstOffset + src.length > d.length) throw new Error(`upload: ${src.length} values at ${dstOffset} do not fit a buffer of ${d.length}`);
    d.set(src, dstOffset);
  }

  download(src: Buf, srcOffset = 0, count?: number, out?: Float32Array): Float32Array {
    const s = host(src, 'download');
    const n = count ?? s.length - srcOffset;
    if (srcOffset < 0 || n < 0 || srcOffset + n > s.length) throw new Error(`download: ${n} values at ${srcOffset} are outside a buffer of ${s.length}`);
    const y = out ?? new Float32Array(n);
    if (y.length < n) throw new Error(`download: out has ${y.length} values, needs ${n}`);
    y.set(s.subarray(srcOffset, srcOffset + n));
    return y;
  }

  gatherRows(x: Buf, dim: number, rows: Int32Array, out: Buf): void {
    this.lib.gatherRows(host(x, 'gatherRows x'), dim, rows, host(out, 'gatherRows out'));
  }

  embedding(table: Tensor, ids: Int32Array, out: Buf): void {
    if (table.ndim !== 2) throw new Error(`embedding: table must be 2-D [vocab, hidden], got ${JSON.stringify(table.shape)}`);
    const type = (EMB_TYPE as Record<string, number | undefined>)[table.dtype];
    if (type === undefined) throw new Error(`embedding: unsupported table dtype ${table.dtype}`);
    const t = isQuantDType(table.dtype) ? table : this.contiguousOf(table);
    const [vocab, dim] = t.shape as [number, number];
    this.lib.embedding(t.data as Float32Array | Uint16Array | Uint8Array, type, isQuantDType(t.dtype) ? 0 : t.offset, vocab, dim, ids, host(out, 'embedding out'));
  }

  rmsNorm(x: Buf, rows: number, dim: number, weight: Float32Array, eps: number, out: Buf): void {
    this.lib.rmsNorm(host(x, 'rmsNorm x'), rows, dim, weight, eps, host(out, 'rmsNorm out'));
  }

  linear(x: Buf, m: number, w: Tensor, out: Buf, lora?: readonly LoraSegment[]): void {
    const xs = host(x, 'linear x'), ys = host(out, 'linear out');
    this.backend.linear(xs, m, w, null, ys);
    if (!lora || lora.length === 0) return;
    const [n, k] = w.shape as [number, number];
    // Flat, 10 fields per segment: rowStart, rows, r, A, A type, A offset, B, B type, B offset, scale.
    const segs: (number | Float32Array | Uint16Array)[] = [];
    for (const s of lora) {
      if (s.rows === 0) continue;
      const r = s.a.shape[0]!;
      if (s.a.shape[1] !== k || s.b.shape[0] !== n || s.b.shape[1] !== r) {
        throw new Error(`linear: LoRA A ${JSON.stringify(s.a.shape)} / B ${JSON.stringify(s.b.shape)} do not fit a [${n}, ${k}] weight`);
      }
      if (isQuantDType(s.a.dtype) || isQuantDType(s.b.dtype)) {
        this.quantizedLora(xs, k, ys, n, s);
        continue;
      }
      const a = this.contiguousOf(s.a), b = this.contiguousOf(s.b);
      segs.push(s.rowStart, s.rows, r, a.data as Float32Array | Uint16Array, this.wtype(a), a.offset, b.data as Float32Array | Uint16Array, this.wtype(b), b.offset, s.scale);
    }
    if (segs.length > 0) this.lib.loraAdd(xs, m, k, ys, n, segs);
  }

  rope(x: Buf, rows: number, rowStride: number, offset: number, nHeads: number, headDim: number, rotaryDim: number, cos: Buf, sin: Buf): void {
    this.lib.rope(host(x, 'rope x'), rows, rowStride, offset, nHeads, headDim, rotaryDim, host(cos, 'rope cos'), host(sin, 'rope sin'));
  }

  swiglu(gu: Buf, rows: number, inter: number, out: Buf): void {
    this.lib.swiglu(host(gu, 'swiglu gu'), rows, inter, host(out, 'swiglu out'));
  }

  add(x: Buf, y: Buf, n: number): void {
    this.lib.addInPlace(host(x, 'add x'), host(y, 'add y'), n, 1);
  }

  allocKv(spec: KvSpec): NativeKvStore {
    const type = (KV_DTYPE as Record<string, number | undefined>)[spec.dtype];
    if (type === undefined) throw new Error(`allocKv: unknown KV dtype '${spec.dtype}' (expected f32, f16 or q8_0)`);
    const handle = this.lib.kvAlloc(type, spec.layers, spec.numBlocks, spec.blockSize, spec.nKvHeads, spec.headDim);
    const bytes = 2 * spec.layers * spec.numBlocks * spec.blockSize * spec.nKvHeads * KV_ROW_BYTES[spec.dtype](spec.headDim);
    return new NativeKvStore({ ...spec }, bytes, handle);
  }

  kvWrite(kv: KvStore, layer: number, src: Buf, rowStride: number, kOffset: number, vOffset: number, seqs: readonly SeqRows[]): void {
    const { meta, tables } = encodeSeqs(seqs);
    this.lib.kvWrite(pool(kv).handle, layer, host(src, 'kvWrite src'), rowStride, kOffset, vOffset, meta, tables);
  }

  kvCopyBlocks(kv: KvStore, src: Int32Array, dst: Int32Array): void {
    this.lib.kvCopyBlocks(pool(kv).handle, src, dst);
  }

  pagedAttention(q: Buf, qStride: number, qOffset: number, kv: KvStore, layer: number, seqs: readonly SeqRows[], nHeads: number, scale: number, out: Buf): void {
    const { meta, tables } = encodeSeqs(seqs);
    this.lib.pagedAttention(host(q, 'pagedAttention q'), qStride, qOffset, pool(kv).handle, layer, meta, tables, nHeads, scale, host(out, 'pagedAttention out'));
  }

  /** The stored bytes of one block of K (which 0) or V (1) of a layer; for tests. */
  kvReadBlock(kv: KvStore, layer: number, which: 0 | 1, block: number): Uint8Array {
    const p = pool(kv);
    const out = new Uint8Array(p.spec.blockSize * p.spec.nKvHeads * KV_ROW_BYTES[p.spec.dtype](p.spec.headDim));
    this.lib.kvReadBlock(p.handle, layer, which, block, out);
    return out;
  }

  private wtype(t: Tensor): number {
    return PLAIN_WTYPE[t.dtype as keyof typeof PLAIN_WTYPE];
  }

  private contiguousOf(t: Tensor): Tensor {
    if (t.isContiguous()) return t;
    let c = this.contiguous.get(t);
    if (!c) this.contiguous.set(t, (c = t.contiguous()));
    return c;
  }

  // Quantized A/B (a non-default storage policy): the two products through the quantized GEMM, then one scaled
  // native add. Rows of the segment are contiguous, so each product is one call.
  private quantizedLora(x: Float32Array, k: number, out: Float32Array, n: number, s: LoraSegment): void {
    const xs = x.subarray(s.rowStart * k, (s.rowStart + s.rows) * k);
    const ax = this.backend.linear(xs, s.rows, s.a, null);
    const bax = this.backend.linear(ax, s.rows, s.b, null);
    this.lib.addInPlace(out.subarray(s.rowStart * n, (s.rowStart + s.rows) * n), bax, s.rows * n, s.scale);
  }
}
