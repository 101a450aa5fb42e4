// DeviceOps on host memory, carried by any v1 Backend: a Buf wraps a Float32Array, `linear` (and the two skinny
// linears of each LoRA segment) runs the backend's GEMMs, attention runs the backend's `attention` on each
// sequence's K/V gathered from the paged store, and the glue ops are plain TypeScript loops. It is the oracle
// for device backends (the reference backend's ops) and the native backend's fallback; a native device
// subclasses it and overrides ops one by one.
import type { AttentionParams, Backend } from './backend.js';
import type { Buf, DeviceOps, KvSpec, KvStore, LoraSegment, SeqRows } from './device.js';
import { isQuantDType } from './dtype.js';
import { rmsNorm } from './ops.js';
import type { Tensor } from './tensor.js';
import { weightRow } from './weight_row.js';
import { HostKvStore } from './host_kv.js';

export class HostBuf implements Buf {
  constructor(readonly data: Float32Array) {}
  get size(): number {
    return this.data.length;
  }
}

export interface HostDeviceOptions {
  /**
   * Rows to run a linear of `m` rows at (≥ m; the extra rows are zero padding) so that every row's result is
   * independent of m. Identity when absent (the backend's GEMMs are batch invariant already).
   */
  invariantRows?: (w: Tensor, m: number) => number;
  /** Attention over one sequence's contiguous K/V (default: the backend's); must be row invariant too. */
  attention?: (p: AttentionParams) => Float32Array;
}

/** The host array behind a buffer, checked to hold `need` values. */
export function hostData(b: Buf, need: number, what: string): Float32Array {
  if (!(b instanceof HostBuf)) throw new Error(`${what}: the buffer was not allocated by this backend's device ops`);
  if (!(need <= b.size)) throw new Error(`${what}: a buffer of ${b.size} values is too small for ${need}`);
  return b.data;
}

function hostKv(kv: KvStore, what: string): HostKvStore {
  if (!(kv instanceof HostKvStore)) throw new Error(`${what}: the KV store was not allocated by this backend's device ops`);
  return kv;
}

/** A reusable host work array of at least n values (grown when too small). */
class Work {
  private a = new Float32Array(0);
  get(n: number): Float32Array {
    if (this.a.length < n) this.a = new Float32Array(Math.max(n, 2 * this.a.length));
    return this.a.subarray(0, n);
  }
}

export class HostDevice implements DeviceOps {
  private readonly w = { pad: new Work(), padOut: new Work(), ax: new Work(), bax: new Work(), q: new Work(), k: new Work(), v: new Work(), row: new Work() };

  constructor(readonly be: Backend, private readonly opts: HostDeviceOptions = {}) {}

  alloc(size: number): Buf {
    if (!Number.isInteger(size) || size < 0) throw new Error(`alloc: size must be a non-negative integer, got ${size}`);
    return new HostBuf(new Float32Array(size));
  }

  upload(src: Float32Array, dst: Buf, dstOffset = 0): void {
    hostData(dst, dstOffset + src.length, 'upload').set(src, dstOffset);
  }

  download(src: Buf, srcOffset = 0, count?: number, out?: Float32Array): Float32Array {
    const n = count ?? src.size - srcOffset;
    const d = hostData(src, srcOffset + n, 'download');
    const y = out ?? new Float32Array(n);
    if (y.length < n) throw new Error(`download: out has ${y.length} values, expected ${n}`);
    y.set(d.subarray(srcOffset, srcOffset + n));
    return y;
  }

  gatherRows(x: Buf, dim: number, rows: Int32Array, out: Buf): void {
    const o = hostData(out, rows.length * dim, 'gatherRows out'), xd = hostData(x, 0, 'gatherRows');
    rows.forEach((r, i) => {
      if (!(r >= 0 && (r + 1) * dim <= xd.length)) throw new Error(`gatherRows: row ${r} is outside the buffer (${xd.length / dim} rows of ${dim})`);
      o.set(xd.subarray(r * dim, (r + 1) * dim), i * dim);
    });
  }

  embedding(table: Tensor, ids: Int32Array, out: Buf): void {
    const [vocab, d] = table.shape as [number, number];
    const o = hostData(out, ids.length * d, 'embedding out');
    const t = isQuantDType(table.dtype) ? table : table.contiguous();
    ids.forEach((id, i) => {
      if (!(id >= 0 && id < vocab)) throw new Error(`embedding: token id ${id} at ${i} is outside the vocabulary [0, ${vocab})`);
      weightRow(t, id, d, o.subarray(i * d, (i + 1) * d));
    });
  }

  rmsNorm(x: Buf, rows: number, dim: number, weight: Float32Array, eps: number, out: Buf): void {
    const xd = hostData(x, rows * dim, 'rmsNorm'), o = hostData(out, rows * dim, 'rmsNorm out');
    if (weight.length !== dim) throw new Error(`rmsNorm: weight has ${weight.length} values, expected ${dim}`);
    rmsNorm(xd, rows, dim, weight, eps, o);
  }

  linear(x: Buf, m: number, w: Tensor, out: Buf, lora?: readonly LoraSegment[]): void {
    if (w.ndim !== 2) throw new Error(`linear: weight must be 2-D [N, K], got ${JSON.stringify(w.shape)}`);
    const n = w.shape[0]!, k = w.shape[1]!;
    const xd = hostData(x, m * k, 'linear'), od = hostData(out, m * n, 'linear out');
    this.gemm(xd.subarray(0, m * k), m, w, od.subarray(0, m * n));
    for (const s of lora ?? []) {
      const r = s.a.shape[0]!;
      if (!(s.rowStart >= 0 && s.rows >= 0 && s.rowStart + s.rows <= m)) throw new Error(`linear: LoRA rows [${s.rowStart}, ${s.rowStart + s.rows}) outside the ${m} rows`);
      if (s.a.shape[1] !== k || s.b.shape[0] !== n || s.b.shape[1] !== r) throw new Error(`linear: LoRA A ${JSON.stringify(s.a.shape)} / B ${JSON.stringify(s.b.shape)} do not fit a [${n}, ${k}] weight`);
      if (s.rows === 0) continue;
      const ax = this.w.ax.get(s.rows * r), bax = this.w.bax.get(s.rows * n);
      this.gemm(xd.subarray(s.rowStart * k, (s.rowStart + s.rows) * k), s.rows, s.a, ax); // [rows, r]
      this.gemm(ax, s.rows, s.b, bax); // [rows, N]
      const o = s.rowStart * n;
      for (let i = 0; i < bax.length; i++) od[o + i]! += s.scale * bax[i]!;
    }
  }

  /** y [m, N] = x [m, K] · Wᵀ through the backend, padded to a batch-invariant row count when asked. */
  private gemm(x: Float32Array, m: number, w: Tensor, y: Float32Array): void {
    const rows = this.opts.invariantRows?.(w, m) ?? m;
    if (rows === m) {
      this.be.linear(x, m, w, null, y);
      return;
    }
    const k = w.shape[1]!, n = w.shape[0]!;
    const px = this.w.pad.get(rows * k), py = this.w.padOut.get(rows * n);
    px.set(x);
    px.fill(0, m * k);
    this.be.linear(px, rows, w, null, py);
    y.set(py.subarray(0, m * n));
  }

  rope(x: Buf, rows: number, rowStride: number, offset: number, nHeads: number, headDim: number, rotaryDim: number, cos: Buf, sin: Buf): void {
    const xd = hostData(x, rows * rowStride, 'rope');
    const c = hostData(cos, rows * rotaryDim, 'rope cos'), s = hostData(sin, rows * rotaryDim, 'rope sin');
    if (offset + nHeads * headDim > rowStride || rotaryDim > headDim || rotaryDim % 2 !== 0) throw new Error(`rope: ${nHeads} heads of ${headDim} (rotary ${rotaryDim}) at column ${offset} do not fit rows of ${rowStride}`);
    const half = rotaryDim / 2;
    for (let i = 0; i < rows; i++) {
      const t = i * rotaryDim;
      for (let h = 0; h < nHeads; h++) {
        const o = i * rowStride + offset + h * headDim;
        for (let j = 0; j < half; j++) {
          const x1 = xd[o + j]!, x2 = xd[o + j + half]!;
          xd[o + j] = x1 * c[t + j]! - x2 * s[t + j]!;
          xd[o + j + half] = x2 * c[t + j + half]! + x1 * s[t + j + half]!;
        }
      }
    }
  }

  swiglu(gu: Buf, rows: number, inter: number, out: Buf): void {
    const g = hostData(gu, rows * 2 * inter, 'swiglu'), o = hostData(out, rows * inter, 'swiglu out');
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < inter; j++) {
        const a = g[i * 2 * inter + j]!, u = g[i * 2 * inter + inter + j]!;
        o[i * inter + j] = u * (a / (1 + Math.exp(-a)));
      }
    }
  }

  add(x: Buf, y: Buf, n: number): void {
    const a = hostData(x, n, 'add'), b = hostData(y, n, 'add');
    for (let i = 0; i < n; i++) a[i]! += b[i]!;
  }

  allocKv(spec: KvSpec): KvStore {
    return new HostKvStore({ ...spec });
  }

  kvWrite(kv: KvStore, layer: number, src: Buf, rowStride: number, kOffset: number, vOffset: number, seqs: readonly SeqRows[]): void {
    const store = hostKv(kv, 'kvWrite'), { k, v } = store.layer(layer, 'kvWrite');
    const rs = store.rowSize;
    if (kOffset + rs > rowStride || vOffset + rs > rowStride) throw new Error(`kvWrite: K at ${kOffset} / V at ${vOffset} (${rs} values) do not fit rows of ${rowStride}`);
    const sd = hostData(src, rowsOf(seqs) * rowStride, 'kvWrite src');
    for (const s of seqs) {
      store.checkSeq(s, 'kvWrite');
      for (let r = 0; r < s.rows; r++) {
        const row = store.rowOf(s.blockTable, s.start + r), o = (s.rowStart + r) * rowStride;
        k.write(row, sd, o + kOffset);
        v.write(row, sd, o + vOffset);
      }
    }
  }

  kvCopyBlocks(kv: KvStore, src: Int32Array, dst: Int32Array): void {
    const store = hostKv(kv, 'kvCopyBlocks'), { numBlocks, blockSize, layers } = store.spec;
    if (src.length !== dst.length) throw new Error(`kvCopyBlocks: ${src.length} source blocks but ${dst.length} destinations`);
    for (const b of [...src, ...dst]) if (!(b >= 0 && b < numBlocks)) throw new Error(`kvCopyBlocks: block id ${b} is outside the pool [0, ${numBlocks})`);
    for (let l = 0; l < layers; l++) {
      src.forEach((s, i) => {
        store.k[l]!.copyRows(s * blockSize, dst[i]! * blockSize, blockSize);
        store.v[l]!.copyRows(s * blockSize, dst[i]! * blockSize, blockSize);
      });
    }
  }

  pagedAttention(q: Buf, qStride: number, qOffset: number, kv: KvStore, layer: number, seqs: readonly SeqRows[], nHeads: number, scale: number, out: Buf): void {
    const store = hostKv(kv, 'pagedAttention'), planes = store.layer(layer, 'pagedAttention');
    const { nKvHeads, headDim: d } = store.spec, rs = store.rowSize, qRow = nHeads * d;
    if (qOffset + qRow > qStride) throw new Error(`pagedAttention: ${nHeads} query heads at column ${qOffset} do not fit rows of ${qStride}`);
    const total = rowsOf(seqs);
    const qd = hostData(q, total * qStride, 'pagedAttention q'), od = hostData(out, total * qRow, 'pagedAttention out');
    const attention = this.opts.attention ?? ((p: AttentionParams) => this.be.attention(p));
    for (const s of seqs) {
      store.checkSeq(s, 'pagedAttention');
      if (s.rows === 0) continue;
      const tk = s.start + s.rows;
      const kc = this.w.k.get(tk * rs), vc = this.w.v.get(tk * rs); // [tk, nKv, d] gathered block by block
      const bs = store.spec.blockSize;
      for (let p = 0; p < tk; p += bs) {
        const row = store.rowOf(s.blockTable, p), n = Math.min(bs, tk - p);
        planes.k.read(row, kc, p * rs, n);
        planes.v.read(row, vc, p * rs, n);
      }
      const qs = this.w.q.get(s.rows * qRow); // [rows, nHeads, d]
      for (let r = 0; r < s.rows; r++) qs.set(qd.subarray((s.rowStart + r) * qStride + qOffset, (s.rowStart + r) * qStride + qOffset + qRow), r * qRow);
      attention({
        q: qs, k: kc, v: vc, tq: s.rows, tk, nHeads, nKvHeads, headDim: d, scale, causalOffset: s.start,
        out: od.subarray(s.rowStart * qRow, (s.rowStart + s.rows) * qRow),
      });
    }
  }
}

function rowsOf(seqs: readonly SeqRows[]): number {
  let n = 0;
  for (const s of seqs) n = Math.max(n, s.rowStart + s.rows);
  return n;
}
