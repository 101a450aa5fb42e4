// The paged KV store of the host device: per layer, K and V of [numBlocks · blockSize] token rows, each row
// [nKv, headDim], stored as f32, f16 or q8_0. A sequence's position p lives in row
// blockTable[p / blockSize] · blockSize + p % blockSize.
//
// q8_0 storage: ggml's Q8_0 recipe (scale d = amax / 127 kept as f16, values round(x / d) as int8) on groups of
// 32 values along each head's headDim (the last group shorter when headDim is not a multiple of 32).
import { f32ToF16, f16ToF32, decodeF16 } from './dtype.js';
import type { KvDType, KvSpec, KvStore, SeqRows } from './device.js';

/** Values per q8_0 group (ggml's QK8_0). */
export const KV_Q8_GROUP = 32;
const Q8_MAX = 127;
const KV_DTYPES: readonly KvDType[] = ['f32', 'f16', 'q8_0'];

/** One layer's K or V rows in one storage format. */
interface KvPlane {
  /** Row `row` ← src[off : off + rowSize]. */
  write(row: number, src: Float32Array, off: number): void;
  /** dst[off : off + n·rowSize] ← rows [row, row + n), as f32. */
  read(row: number, dst: Float32Array, off: number, n?: number): void;
  /** Rows [src, src + n) → [dst, dst + n). */
  copyRows(src: number, dst: number, n: number): void;
}

class F32Plane implements KvPlane {
  private readonly a: Float32Array;
  constructor(rows: number, private readonly rs: number) { this.a = new Float32Array(rows * rs); }
  write(row: number, src: Float32Array, off: number): void { this.a.set(src.subarray(off, off + this.rs), row * this.rs); }
  read(row: number, dst: Float32Array, off: number, n = 1): void { dst.set(this.a.subarray(row * this.rs, (row + n) * this.rs), off); }
  copyRows(src: number, dst: number, n: number): void { this.a.copyWithin(dst * this.rs, src * this.rs, (src + n) * this.rs); }
}

class F16Plane implements KvPlane {
  private readonly a: Uint16Array;
  constructor(rows: number, private readonly rs: number) { this.a = new Uint16Array(rows * rs); }
  write(row: number, src: Float32Array, off: number): void {
    const o = row * this.rs;
    for (let i = 0; i < this.rs; i++) this.a[o + i] = f32ToF16(src[off + i]!);
  }
  read(row: number, dst: Float32Array, off: number, n = 1): void { decodeF16(this.a.subarray(row * this.rs, (row + n) * this.rs), dst.subarray(off, off + n * this.rs)); }
  copyRows(src: number, dst: number, n: number): void { this.a.copyWithin(dst * this.rs, src * this.rs, (src + n) * this.rs); }
}

class Q8Plane implements KvPlane {
  private readonly q: Int8Array;
  private readonly d: Uint16Array; // f16 scale of each group, one per (row, head, group)
  private readonly groups: number; // per head
  constructor(rows: number, private readonly nKv: number, private readonly hd: number) {
    this.groups = Math.ceil(hd / KV_Q8_GROUP);
    this.q = new Int8Array(rows * nKv * hd);
    this.d = new Uint16Array(rows * nKv * this.groups);
  }
  write(row: number, src: Float32Array, off: number): void {
    const rs = this.nKv * this.hd;
    for (let h = 0; h < this.nKv; h++) {
      for (let g = 0; g < this.groups; g++) {
        const a = h * this.hd + g * KV_Q8_GROUP, b = Math.min((h + 1) * this.hd, a + KV_Q8_GROUP);
        let amax = 0;
        for (let i = a; i < b; i++) amax = Math.max(amax, Math.abs(src[off + i]!));
        const d = Math.fround(amax / Q8_MAX), id = d !== 0 ? Math.fround(1 / d) : 0; // as ggml: id from the f32 d
        this.d[(row * this.nKv + h) * this.groups + g] = f32ToF16(d);
        for (let i = a; i < b; i++) {
          const v = Math.fround(src[off + i]! * id);
          this.q[row * rs + i] = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
        }
      }
    }
  }
  read(row: number, dst: Float32Array, off: number, n = 1): void {
    for (let i = 1; i < n; i++) this.read(row + i, dst, off + i * this.nKv * this.hd);
    const rs = this.nKv * this.hd;
    for (let h = 0; h < this.nKv; h++) {
      for (let g = 0; g < this.groups; g++) {
        const d = f16ToF32(this.d[(row * this.nKv + h) * this.groups + g]!);
        const a = h * this.hd + g * KV_Q8_GROUP, b = Math.min((h + 1) * this.hd, a + KV_Q8_GROUP);
        for (let i = a; i < b; i++) dst[off + i] = d * this.q[row * rs + i]!;
      }
    }
  }
  copyRows(src: number, dst: number, n: number): void {
    const rs = this.nKv * this.hd, gs = this.nKv * this.groups;
    this.q.copyWithin(dst * rs, src * rs, (src + n) * rs);
    this.d.copyWithin(dst * gs, src * gs, (src + n) * gs);
  }
}

/** Bytes per token row of one layer's K (or V) in a storage format. */
export function kvRowBytes(dtype: KvDType, nKv: number, headDim: number): number {
  const n = nKv * headDim;
  return dtype === 'f32' ? 4 * n : dtype === 'f16' ? 2 * n : n + 2 * nKv * Math.ceil(headDim / KV_Q8_GROUP);
}

export class HostKvStore implements KvStore {
  readonly bytes: number;
  readonly rowSize: number;
  readonly k: KvPlane[] = [];
  readonly v: KvPlane[] = [];

  constructor(readonly spec: KvSpec) {
    const { layers, numBlocks, blockSize, nKvHeads, headDim, dtype } = spec;
    for (const [name, v] of Object.entries({ layers, numBlocks, blockSize, nKvHeads, headDim })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`allocKv: ${name} must be a positive integer, got ${v}`);
    }
    if (!KV_DTYPES.includes(dtype)) throw new Error(`allocKv: KV storage '${dtype}' is not one of ${KV_DTYPES.join(', ')}`);
    const rows = numBlocks * blockSize;
    this.rowSize = nKvHeads * headDim;
    const plane = (): KvPlane => dtype === 'f32' ? new F32Plane(rows, this.rowSize) : dtype === 'f16' ? new F16Plane(rows, this.rowSize) : new Q8Plane(rows, nKvHeads, headDim);
    for (let l = 0; l < layers; l++) { this.k.push(plane()); this.v.push(plane()); }
    this.bytes = 2 * layers * rows * kvRowBytes(dtype, nKvHeads, headDim);
  }

  /** The store row of position `pos` of a sequence. */
  rowOf(blockTable: Int32Array, pos: number): number {
    const bs = this.spec.blockSize;
    return blockTable[Math.floor(pos / bs)]! * bs + (pos % bs);
  }

  /** Throws unless `seq`'s block table covers positions [0, start + rows) with valid block ids. */
  checkSeq(seq: SeqRows, what: string): void {
    const { numBlocks, blockSize } = this.spec;
    const { start, rows, blockTable } = seq;
    if (!Number.isInteger(start) || start < 0 || !Number.isInteger(rows) || rows < 0) throw new Error(`${what}: bad sequence rows (start ${start}, rows ${rows})`);
    const need = Math.ceil((start + rows) / blockSize);
    if (blockTable.length < need) throw new Error(`${what}: the block table has ${blockTable.length} blocks; positions [0, ${start + rows}) need ${need} of ${blockSize} tokens`);
    for (let b = 0; b < need; b++) {
      const id = blockTable[b]!;
      if (!(id >= 0 && id < numBlocks)) throw new Error(`${what}: block id ${id} (entry ${b}) is outside the pool [0, ${numBlocks})`);
    }
  }

  layer(layer: number, what: string): { k: KvPlane; v: KvPlane } {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.spec.layers) throw new Error(`${what}: layer ${layer} outside [0, ${this.spec.layers})`);
    return { k: this.k[layer]!, v: this.v[layer]! };
  }
}
