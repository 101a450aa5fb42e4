// The native backend's DeviceOps (backend v2, src/tensor/device.ts): the host device (host_device.ts, the
// oracle) with every op but alloc/upload/download replaced by one call into the addon (native/src/glue.cc,
// paged_attention.cc), so a decode step crosses into native code a handful of times per layer and runs no
// per-element TypeScript. Buffers are the host device's Float32Array wrappers (the addon reads them in place);
// the KV pool is native memory behind an opaque handle, never copied to the host.
import type { Buf, KvSpec, KvStore, LoraSegment, SeqRows } from './device.js';
import type { NativeAddon } from './native_addon.js';
import type { NativeBackend } from './native.js';
import { HostBuf, HostDevice, hostData, type HostDeviceOptions } from './host_device.js';
import { isQuantDType } from './dtype.js';
import { kvRowBytes } from './host_kv.js';
import { isColumnMajor, type Tensor } from './tensor.js';

const KV_DTYPE = { f32: 0, f16: 1, q8_0: 2 } as const;
const PLAIN_WTYPE = { f32: 0, bf16: 1, f16: 2 } as const;
const EMB_TYPE = { f32: 0, bf16: 1, f16: 2, q4_k: 3, q8_0: 4 } as const;

/** The paged KV pool: native memory (freed when this object is collected). */
export class NativeKvStore implements KvStore {
  constructor(readonly spec: KvSpec, readonly bytes: number, readonly handle: unknown) {}
}

function host(b: Buf, what: string): Float32Array {
  return hostData(b, 0, what);  // sizes are checked by the addon
}

function pool(kv: KvStore): NativeKvStore {
  if (!(kv instanceof NativeKvStore)) throw new Error('KV store was not allocated by the native backend (use its allocKv)');
  return kv;
}

/**
 * The ragged batch as the addon reads it: [rowStart, rows, start, tableOffset, tableLength] per sequence in `meta`,
 * the block tables one after another in `tables`. Both arrays are reused (grown when too small) and the addon is
 * told the count: a new small typed array cost ~1–2 µs to hand to N-API (V8 first moves it off its heap), twice a
 * layer per step.
 */
class SeqEncoder {
  // First sizes: the engine's default maxRunning of 8 sequences; 1,024 table entries (16,384 tokens in blocks of 16).
  meta = new Int32Array(5 * 8);
  tables = new Int32Array(1024);

  /** Fills meta and tables from `seqs`; returns the sequence count. */
  encode(seqs: readonly SeqRows[]): number {
    let total = 0;
    for (const s of seqs) total += s.blockTable.length;
    if (this.meta.length < seqs.length * 5) this.meta = new Int32Array(Math.max(seqs.length * 5, 2 * this.meta.length));
    if (this.tables.length < total) this.tables = new Int32Array(Math.max(total, 2 * this.tables.length));
    const meta = this.meta;
    let o = 0;
    for (let i = 0; i < seqs.length; i++) {
      const s = seqs[i]!, n = s.blockTable.length;
      meta[5 * i] = s.rowStart;
      meta[5 * i + 1] = s.rows;
      meta[5 * i + 2] = s.start;
      meta[5 * i + 3] = o;
      meta[5 * i + 4] = n;
      this.tables.set(s.blockTable, o);
      o += n;
    }
    return seqs.length;
  }
}

export class NativeDevice extends HostDevice {
  // Parameters that must be contiguous for the addon, copied once per tensor object.
  private readonly contiguous = new WeakMap<Tensor, Tensor>();
  private readonly transposed = new WeakMap<Tensor, Tensor>();  // columnMajorOf
  private readonly seqs = new SeqEncoder();

  constructor(private readonly lib: NativeAddon, private readonly backend: NativeBackend, opts: HostDeviceOptions = {}) {
    super(backend, opts);
  }

  override alloc(size: number): HostBuf {
    return super.alloc(size) as HostBuf;
  }

  override gatherRows(x: Buf, dim: number, rows: Int32Array, out: Buf): void {
    this.lib.gatherRows(host(x, 'gatherRows x'), dim, rows, host(out, 'gatherRows out'));
  }

  override embedding(table: Tensor, ids: Int32Array, out: Buf): void {
    if (table.ndim !== 2) throw new Error(`embedding: table must be 2-D [vocab, hidden], got ${JSON.stringify(table.shape)}`);
    const base = (EMB_TYPE as Record<string, number | undefined>)[table.dtype];
    const type = base === undefined ? undefined : base + (table.layout === 'x16' ? 2 : 0); // 5, 6: x16 q4_k, q8_0
    if (type === undefined) throw new Error(`embedding: unsupported table dtype ${table.dtype}`);
    const t = isQuantDType(table.dtype) ? table : this.contiguousOf(table);
    const [vocab, dim] = t.shape as [number, number];
    this.lib.embedding(t.data as Float32Array | Uint16Array | Uint8Array, type, isQuantDType(t.dtype) ? 0 : t.offset, vocab, dim, ids, host(out, 'embedding out'));
  }

  override rmsNorm(x: Buf, rows: number, dim: number, weight: Float32Array, eps: number, out: Buf): void {
    this.lib.rmsNorm(host(x, 'rmsNorm x'), rows, dim, weight, eps, host(out, 'rmsNorm out'));
  }

  /** The base GEMM as the host device runs it (padded to batch-invariant rows), then all LoRA segments in one call. */
  override linear(x: Buf, m: number, w: Tensor, out: Buf, lora?: readonly LoraSegment[]): void {
    const [n, k] = w.shape as [number, number];
    for (const s of lora ?? []) {  // before any output is written
      if (!(s.rowStart >= 0 && s.rows >= 0 && s.rowStart + s.rows <= m)) throw new Error(`linear: LoRA rows [${s.rowStart}, ${s.rowStart + s.rows}) outside the ${m} rows`);
    }
    super.linear(x, m, w, out);
    if (!lora || lora.length === 0) return;
    const xs = host(x, 'linear x'), ys = host(out, 'linear out');
    // Flat, 10 fields per segment: rowStart, rows, r, A, A type, A offset, B, B type, B offset, scale; A and B
    // column-major (native/src/lora_napi.cc).
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
      const a = this.columnMajorOf(s.a), b = this.columnMajorOf(s.b);
      segs.push(s.rowStart, s.rows, r, a.data as Float32Array | Uint16Array, this.wtype(a), a.offset, b.data as Float32Array | Uint16Array, this.wtype(b), b.offset, s.scale);
    }
    if (segs.length > 0) this.lib.loraAdd(xs, m, k, ys, n, segs);
  }

  override rope(x: Buf, rows: number, rowStride: number, offset: number, nHeads: number, headDim: number, rotaryDim: number, cos: Buf, sin: Buf): void {
    this.lib.rope(host(x, 'rope x'), rows, rowStride, offset, nHeads, headDim, rotaryDim, host(cos, 'rope cos'), host(sin, 'rope sin'));
  }

  override swiglu(gu: Buf, rows: number, inter: number, out: Buf): void {
    this.lib.swiglu(host(gu, 'swiglu gu'), rows, inter, host(out, 'swiglu out'));
  }

  override add(x: Buf, y: Buf, n: number): void {
    this.lib.addInPlace(host(x, 'add x'), host(y, 'add y'), n, 1);
  }

  override allocKv(spec: KvSpec): NativeKvStore {
    const { layers, numBlocks, blockSize, nKvHeads, headDim, dtype } = spec;
    for (const [name, v] of Object.entries({ layers, numBlocks, blockSize, nKvHeads, headDim })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`allocKv: ${name} must be a positive integer, got ${v}`);
    }
    if (!(dtype in KV_DTYPE)) throw new Error(`allocKv: KV storage '${dtype}' is not one of ${Object.keys(KV_DTYPE).join(', ')}`);
    const handle = this.lib.kvAlloc(KV_DTYPE[spec.dtype], spec.layers, spec.numBlocks, spec.blockSize, spec.nKvHeads, spec.headDim);
    const bytes = 2 * spec.layers * spec.numBlocks * spec.blockSize * kvRowBytes(spec.dtype, spec.nKvHeads, spec.headDim);
    return new NativeKvStore({ ...spec }, bytes, handle);
  }

  override kvWrite(kv: KvStore, layer: number, src: Buf, rowStride: number, kOffset: number, vOffset: number, seqs: readonly SeqRows[]): void {
    const n = this.seqs.encode(seqs);
    this.lib.kvWrite(pool(kv).handle, layer, host(src, 'kvWrite src'), rowStride, kOffset, vOffset, this.seqs.meta, this.seqs.tables, n);
  }

  override kvCopyBlocks(kv: KvStore, src: Int32Array, dst: Int32Array): void {
    this.lib.kvCopyBlocks(pool(kv).handle, src, dst);
  }

  override pagedAttention(q: Buf, qStride: number, qOffset: number, kv: KvStore, layer: number, seqs: readonly SeqRows[], nHeads: number, scale: number, out: Buf): void {
    const n = this.seqs.encode(seqs);
    this.lib.pagedAttention(host(q, 'pagedAttention q'), qStride, qOffset, pool(kv).handle, layer, this.seqs.meta, this.seqs.tables, nHeads, scale, host(out, 'pagedAttention out'), n);
  }

  /** The stored bytes of one block of K (which 0) or V (1) of a layer, [nKvHeads][blockSize] rows; for tests. */
  kvReadBlock(kv: KvStore, layer: number, which: 0 | 1, block: number): Uint8Array {
    const p = pool(kv);
    const out = new Uint8Array(p.spec.blockSize * kvRowBytes(p.spec.dtype, p.spec.nKvHeads, p.spec.headDim));
    this.lib.kvReadBlock(p.handle, layer, which, block, out);
    return out;
  }

  private wtype(t: Tensor): number {
    return PLAIN_WTYPE[t.dtype as keyof typeof PLAIN_WTYPE];
  }

  /**
   * A LoRA factor as the addon reads it: column-major, as the loader places them for this backend; any other is
   * transposed once per tensor object here (a second copy, kept while the tensor lives).
   */
  private columnMajorOf(t: Tensor): Tensor {
    if (isColumnMajor(t)) return t;
    let c = this.transposed.get(t);
    if (!c) this.transposed.set(t, (c = this.backend.columnMajor(t)));
    return c;
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
