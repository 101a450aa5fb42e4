// A plain TypeScript statement of the device ops' semantics (src/tensor/device.ts) for the native tests: the
// existing TS references (ops.ts rmsNorm/embedding, ReferenceBackend linear/attention, dtype.ts f16 codec,
// src/quant's Q8_0) composed on host arrays. The engine's host DeviceOps is the product oracle; this one only
// spells out what the native ops must compute.
import { rmsNorm, embedding } from '../../src/tensor/ops.js';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import { decodeF16, encodeF16 } from '../../src/tensor/dtype.js';
import { dequantizeRowQ8_0, quantizeRowQ8_0 } from '../../src/quant/index.js';
import type { KvSpec, LoraSegment, SeqRows } from '../../src/tensor/device.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const ref = new ReferenceBackend();
export { rmsNorm, embedding };

/** x·cos + rotate_half(x)·sin on [rows, stride] with heads from `offset`, per-row tables [rows, rd] (as rope.ts). */
export function rope(x: Float32Array, rows: number, stride: number, offset: number, nh: number, hd: number, rd: number, cos: Float32Array, sin: Float32Array): void {
  const half = rd / 2;
  for (let r = 0; r < rows; r++) {
    const c = r * rd;
    for (let h = 0; h < nh; h++) {
      const o = r * stride + offset + h * hd;
      for (let k = 0; k < half; k++) {
        const x1 = x[o + k]!, x2 = x[o + k + half]!;
        x[o + k] = x1 * cos[c + k]! - x2 * sin[c + k]!;
        x[o + k + half] = x2 * cos[c + k + half]! + x1 * sin[c + k + half]!;
      }
    }
  }
}

/** out [rows, I] = up · silu(gate) in f64, rounded once. */
export function swiglu(gu: Float32Array, rows: number, inter: number): Float32Array {
  const out = new Float32Array(rows * inter);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < inter; i++) {
      const g = gu[r * 2 * inter + i]!, u = gu[r * 2 * inter + inter + i]!;
      out[r * inter + i] = u * (g / (1 + Math.exp(-g)));
    }
  return out;
}

/** x · Wᵀ plus each segment's scale · (x[rows]·Aᵀ)·Bᵀ, f64 sums (ReferenceBackend.linear). */
export function linear(x: Float32Array, m: number, w: Tensor, lora: readonly LoraSegment[] = []): Float32Array {
  const [n, k] = w.shape as [number, number];
  const y = ref.linear(x, m, w);
  for (const s of lora) {
    const ax = ref.linear(x.subarray(s.rowStart * k, (s.rowStart + s.rows) * k), s.rows, s.a);
    const bax = ref.linear(ax, s.rows, s.b);
    for (let i = 0; i < s.rows * n; i++) y[s.rowStart * n + i] += s.scale * bax[i]!;
  }
  return y;
}

/** What a KV row of `d` values reads back as after storage in `dtype`, and the bytes stored. */
export function storeRow(dtype: KvSpec['dtype'], row: Float32Array): { values: Float32Array; bytes: Uint8Array } {
  switch (dtype) {
    case 'f32':
      return { values: row.slice(), bytes: new Uint8Array(row.slice().buffer) };
    case 'f16': {
      const h = encodeF16(row);
      return { values: decodeF16(h), bytes: new Uint8Array(h.buffer) };
    }
    case 'q8_0': {
      const q = new Uint8Array((row.length / 32) * 34);
      quantizeRowQ8_0(row, q);
      const v = new Float32Array(row.length);
      dequantizeRowQ8_0(q, v);
      return { values: v, bytes: q };
    }
  }
}

/** Paged K/V as the oracle keeps them: per layer, a map position → row values, per sequence id. */
export class OracleKv {
  // [layer] → seq → K/V rows [positions][nKv·d]
  private readonly k: Map<number, Float32Array[]>[];
  private readonly v: Map<number, Float32Array[]>[];
  constructor(readonly spec: KvSpec) {
    this.k = Array.from({ length: spec.layers }, () => new Map());
    this.v = Array.from({ length: spec.layers }, () => new Map());
  }

  write(layer: number, src: Float32Array, stride: number, kOff: number, vOff: number, seqIds: readonly number[], seqs: readonly SeqRows[]): void {
    const { nKvHeads: nkv, headDim: d, dtype } = this.spec;
    seqs.forEach((s, i) => {
      for (const [store, off] of [[this.k[layer]!, kOff], [this.v[layer]!, vOff]] as const) {
        const rows = store.get(seqIds[i]!) ?? [];
        store.set(seqIds[i]!, rows);
        for (let r = 0; r < s.rows; r++) {
          const row = new Float32Array(nkv * d);
          for (let h = 0; h < nkv; h++) {
            const base = (s.rowStart + r) * stride + off + h * d;
            row.set(storeRow(dtype, src.subarray(base, base + d)).values, h * d);
          }
          rows[s.start + r] = row;
        }
      }
    });
  }

  /** Causal GQA attention of each sequence's rows over its positions [0, start + rows) (ReferenceBackend). */
  attention(q: Float32Array, qStride: number, qOffset: number, layer: number, seqIds: readonly number[], seqs: readonly SeqRows[], nHeads: number, scale: number): Float32Array {
    const { nKvHeads: nkv, headDim: d } = this.spec;
    const total = Math.max(0, ...seqs.map((s) => s.rowStart + s.rows));
    const out = new Float32Array(total * nHeads * d);
    seqs.forEach((s, i) => {
      const tk = s.start + s.rows;
      const k = new Float32Array(tk * nkv * d), v = new Float32Array(tk * nkv * d);
      const kr = this.k[layer]!.get(seqIds[i]!)!, vr = this.v[layer]!.get(seqIds[i]!)!;
      for (let p = 0; p < tk; p++) {
        k.set(kr[p]!, p * nkv * d);
        v.set(vr[p]!, p * nkv * d);
      }
      const qs = new Float32Array(s.rows * nHeads * d);
      for (let r = 0; r < s.rows; r++) qs.set(q.subarray((s.rowStart + r) * qStride + qOffset, (s.rowStart + r) * qStride + qOffset + nHeads * d), r * nHeads * d);
      const o = ref.attention({ q: qs, k, v, tq: s.rows, tk, nHeads, nKvHeads: nkv, headDim: d, scale, causalOffset: s.start });
      out.set(o, s.rowStart * nHeads * d);
    });
    return out;
  }
}
