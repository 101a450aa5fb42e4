// The x16 layout of a quantized [rows, K] matrix: rows interleaved in groups of 16 in the order the native
// AVX-512 VNNI kernels read (native/src/interleave.h has the byte map). A group keeps exactly the bytes of its
// 16 rows, so sizes stay those of the ggml layout. The native backend converts weights at load; this module
// is the plain reference of that conversion and the way TypeScript code reads rows of an x16 tensor.
import type { QuantDType } from '../tensor/dtype.js';
import { formatOf } from './index.js';

/** Rows per group. */
export const X16 = 16;

/** How the rows of a quantized tensor are stored: back to back ('rows', ggml), or interleaved by 16. */
export type QuantLayout = 'rows' | 'x16';

interface BlockMap {
  /** Per field chunk: [offset in the ggml block, offset of row 0 from its field's base, bytes (= the row stride), field]. */
  chunks: [number, number, number, Field][];
  /** Byte offset of block `b`'s field in a group of `nb` blocks. */
  base(field: Field, b: number, nb: number): number;
}
/** 0: the quants, 1: the scales. */
type Field = 0 | 1;

// Q4_K, per super-block of 2,304 bytes: qs chunks (4 B) at 64c, d at 2048, dmin at 2080, 3 scale words at 2112 + 64w.
const Q4_K_MAP: BlockMap = {
  chunks: [
    ...Array.from({ length: 32 }, (_, c): [number, number, number, Field] => [16 + 4 * c, 64 * c, 4, 0]),
    [0, 2048, 2, 1],
    [2, 2080, 2, 1],
    ...Array.from({ length: 3 }, (_, w): [number, number, number, Field] => [4 + 4 * w, 2112 + 64 * w, 4, 1]),
  ],
  base: (_f, b) => b * 2304,
};
// Q8_0: qs chunks at 64c, d (16 × 2 B); blocks in pairs b, b + 1 (b even): qs b, qs b + 1, d b, d b + 1, an odd
// last block qs then d (interleave.h: every quant load of the tiles is then one aligned cache line).
const Q8_0_BLOCK_BYTES = 544, Q8_0_QS_BYTES = 512;
const Q8_0_MAP: BlockMap = {
  chunks: [...Array.from({ length: 8 }, (_, c): [number, number, number, Field] => [2 + 4 * c, 64 * c, 4, 0]), [0, 0, 2, 1]],
  base: (f, b, nb) => {
    const at = b * Q8_0_BLOCK_BYTES, odd = b % 2;
    if (f === 0) return at - 32 * odd;
    return at + (odd === 0 && b + 1 < nb ? 2 * Q8_0_QS_BYTES : Q8_0_QS_BYTES);
  },
};

function mapOf(dtype: QuantDType): BlockMap {
  return dtype === 'q4_k' ? Q4_K_MAP : Q8_0_MAP;
}

function check(dtype: QuantDType, bytes: number, rows: number, k: number): { nb: number; bb: number; rb: number } {
  const f = formatOf(dtype);
  if (rows % X16 !== 0) throw new Error(`x16 layout: ${rows} rows is not a multiple of ${X16}`);
  if (k % f.blockSize !== 0) throw new Error(`x16 layout: K=${k} is not a multiple of the ${dtype} block size ${f.blockSize}`);
  const nb = k / f.blockSize, rb = nb * f.bytesPerBlock;
  if (bytes < rows * rb) throw new Error(`x16 layout: ${bytes} bytes do not hold a ${dtype} [${rows}, ${k}] matrix (${rows * rb})`);
  return { nb, bb: f.bytesPerBlock, rb };
}

/** Row `r` of an x16 matrix → its ggml bytes in `dst` (rowBytes long). */
export function x16Row(dtype: QuantDType, src: Uint8Array, rows: number, k: number, r: number, dst: Uint8Array): void {
  const { nb, bb, rb } = check(dtype, src.length, rows, k);
  const group = Math.floor(r / X16) * X16 * rb, lane = r % X16, map = mapOf(dtype);
  for (let b = 0; b < nb; b++) {
    for (const [o, x, n, f] of map.chunks) {
      const from = group + map.base(f, b, nb) + x + lane * n;
      for (let i = 0; i < n; i++) dst[b * bb + o + i] = src[from + i]!;
    }
  }
}

/** ggml rows → a new x16 matrix (the reference of the native backend's in-place conversion). */
export function interleaveX16(dtype: QuantDType, src: Uint8Array, rows: number, k: number): Uint8Array {
  const { nb, bb, rb } = check(dtype, src.length, rows, k);
  const out = new Uint8Array(rows * rb), map = mapOf(dtype);
  for (let r = 0; r < rows; r++) {
    const group = Math.floor(r / X16) * X16 * rb, lane = r % X16;
    for (let b = 0; b < nb; b++) {
      const from = r * rb + b * bb;
      for (const [o, x, n, f] of map.chunks) {
        const to = group + map.base(f, b, nb) + x + lane * n;
        for (let i = 0; i < n; i++) out[to + i] = src[from + o + i]!;
      }
    }
  }
  return out;
}

/** An x16 matrix → a new matrix of ggml rows. */
export function deinterleaveX16(dtype: QuantDType, src: Uint8Array, rows: number, k: number): Uint8Array {
  const { rb } = check(dtype, src.length, rows, k);
  const out = new Uint8Array(rows * rb);
  for (let r = 0; r < rows; r++) x16Row(dtype, src, rows, k, r, out.subarray(r * rb, (r + 1) * rb));
  return out;
}
