// Backend v2: the device interface the language model runs on. Buffers belong to the backend and model code
// only holds opaque handles, so a backend whose memory is not host memory (WebGPU, CUDA) can implement it
// without touching model code. Host arrays cross only at the edges: token ids, positions' rotary tables,
// block tables and segment lists go in (small, per step); logits and requested hidden states come out.
//
// Parameters (weights, norm gains) stay `Tensor`/Float32Array objects owned by the model; a device backend
// mirrors each one once, keyed by object identity (a WeakMap), the first time an op sees it.
//
// Agreed between the engine (issue 10) and the kernels (issue 11) work: the reference backend implements this
// in plain TypeScript and is the oracle (src/tensor/host_device.ts); the native backend implements it in native/.
// Every Backend hands out its ops as `be.device`. Every op's result row r
// depends only on input row r (and, for attention, on that row's sequence), never on how many other rows or
// sequences share the batch: batched generation must give the same ids as one-at-a-time.
import type { Tensor } from './tensor.js';

/** An f32 device buffer of `size` elements. Opaque to model code. */
export interface Buf {
  readonly size: number;
}

export type KvDType = 'f32' | 'f16' | 'q8_0';

export interface KvSpec {
  layers: number;
  /** Blocks in the pool; block ids are 0..numBlocks-1. */
  numBlocks: number;
  /** Tokens per block (16 or 32). */
  blockSize: number;
  nKvHeads: number;
  headDim: number;
  /** Storage of K and V ('f16' by default in the engine; 'f32' for oracle tests). */
  dtype: KvDType;
}

/** Paged keys and values of every layer: [layers][numBlocks][blockSize][nKvHeads][headDim] for K and for V. */
export interface KvStore {
  readonly spec: KvSpec;
  /** Bytes held for K and V together. */
  readonly bytes: number;
}

/** One sequence's rows inside a ragged batch (rows of a sequence are contiguous, in position order). */
export interface SeqRows {
  /** First row of this sequence in the batch. */
  rowStart: number;
  /** New rows (tokens) of this sequence in this forward. */
  rows: number;
  /** Position of the first new row = tokens of this sequence already in the KV store. */
  start: number;
  /** Block ids covering positions [0, start + rows): position p lives in block blockTable[p / blockSize]. */
  blockTable: Int32Array;
}

/** A LoRA delta applied to a run of rows: out[rows] += scale · (x[rows] · Aᵀ) · Bᵀ. */
export interface LoraSegment {
  rowStart: number;
  rows: number;
  a: Tensor; // [r, in]
  b: Tensor; // [out, r]
  scale: number;
}

export interface DeviceOps {
  /** A zeroed buffer of `size` f32 values. */
  alloc(size: number): Buf;
  /** Host → device: src into dst at element offset `dstOffset` (default 0). */
  upload(src: Float32Array, dst: Buf, dstOffset?: number): void;
  /** Device → host: `count` values from element offset `srcOffset` (defaults: the whole buffer). */
  download(src: Buf, srcOffset?: number, count?: number, out?: Float32Array): Float32Array;
  /** out[i, :] = x[rows[i], :] for a [?, dim] buffer (picks the rows that get logits). */
  gatherRows(x: Buf, dim: number, rows: Int32Array, out: Buf): void;

  /** out [T, hidden] = table[ids] (table [vocab, hidden] in any weight dtype). */
  embedding(table: Tensor, ids: Int32Array, out: Buf): void;
  /** out [rows, dim] = x / sqrt(mean(x²) + eps) · weight, per row, in f32. */
  rmsNorm(x: Buf, rows: number, dim: number, weight: Float32Array, eps: number, out: Buf): void;
  /**
   * out [m, N] = x [m, K] · Wᵀ, then each LoRA segment adds its delta to its rows (rows of different sequences
   * may use different adapters, or none, in one call).
   */
  linear(x: Buf, m: number, w: Tensor, out: Buf, lora?: readonly LoraSegment[]): void;
  /**
   * Rotary embedding in place on the first rotaryDim dims of each head of a [rows, rowStride] buffer, heads
   * starting at column `offset`: x·cos + rotate_half(x)·sin with per-row tables cos/sin [rows, rotaryDim] (the
   * model computes them per sequence: positions and the LongRoPE regime differ between sequences).
   */
  rope(x: Buf, rows: number, rowStride: number, offset: number, nHeads: number, headDim: number, rotaryDim: number, cos: Buf, sin: Buf): void;
  /** out [rows, I] = up · silu(gate), gu [rows, 2I] = [gate | up]. */
  swiglu(gu: Buf, rows: number, inter: number, out: Buf): void;
  /** x[0:n] += y[0:n]. */
  add(x: Buf, y: Buf, n: number): void;

  allocKv(spec: KvSpec): KvStore;
  /**
   * Writes K and V of the new rows into the store at each sequence's positions start..start+rows-1:
   * K of row r = src[r, kOffset : kOffset + nKv·headDim], V likewise at vOffset (src is [rows, rowStride]).
   */
  kvWrite(kv: KvStore, layer: number, src: Buf, rowStride: number, kOffset: number, vOffset: number, seqs: readonly SeqRows[]): void;
  /** Copies whole blocks (copy-on-write of a shared, partly filled prefix block): every layer, K and V. */
  kvCopyBlocks(kv: KvStore, src: Int32Array, dst: Int32Array): void;
  /**
   * Causal attention of each sequence's new rows over its cached positions [0, start + rows) (kvWrite first):
   * q [rows, qStride] with heads at column qOffset, out [rows, nHeads·headDim]. GQA: head h reads kv head
   * floor(h / (nHeads / nKv)). Softmax in f32.
   */
  pagedAttention(q: Buf, qStride: number, qOffset: number, kv: KvStore, layer: number, seqs: readonly SeqRows[], nHeads: number, scale: number, out: Buf): void;
}
