// Layer library over host arrays (the encoders): thin modules over a Backend (GEMM/attention) and the small TS
// ops, each writing into an `out` buffer when one is given. Each layer is built from a WeightSource with its
// checkpoint prefix, so the module tree mirrors the checkpoint key tree. The language model's layers (device
// buffers, LoRA, SwiGLU, RoPE) are in ./device_layers.ts.
import type { Backend } from '../tensor/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import { embedding } from '../tensor/ops.js';
import type { StorageDType, WeightSource } from './weights.js';

export class Linear {
  readonly weight: Tensor; // [out, in]
  readonly bias: Float32Array | null; // [out]
  constructor(ws: WeightSource, prefix: string, readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean; as?: StorageDType } = {}) {
    this.weight = ws.take(`${prefix}.weight`, [outFeatures, inFeatures], opts.as);
    this.bias = opts.bias ? ws.take(`${prefix}.bias`, [outFeatures], 'f32').f32() : null;
  }
  /** x [m, in] → [m, out] (into `out` when given). */
  forward(be: Backend, x: Float32Array, m: number, out?: Float32Array): Float32Array {
    return be.linear(x, m, this.weight, this.bias, out);
  }
}

export class LayerNorm {
  readonly weight: Float32Array;
  readonly bias: Float32Array | null;
  constructor(ws: WeightSource, prefix: string, readonly dim: number, readonly eps: number, opts: { bias?: boolean } = {}) {
    this.weight = ws.take(`${prefix}.weight`, [dim], 'f32').f32();
    this.bias = opts.bias === false ? null : ws.take(`${prefix}.bias`, [dim], 'f32').f32();
  }
  /** x [rows, dim] → [rows, dim] (into `out` when given; may alias x). */
  forward(be: Backend, x: Float32Array, rows: number, out?: Float32Array): Float32Array {
    return be.layerNorm(x, rows, this.dim, this.weight, this.bias, this.eps, out);
  }
}

export class Embedding {
  readonly weight: Tensor; // [vocab, dim], any storage dtype
  constructor(ws: WeightSource, prefix: string, readonly vocab: number, readonly dim: number, opts: { as?: StorageDType } = {}) {
    this.weight = ws.take(`${prefix}.weight`, [vocab, dim], opts.as);
  }
  /** ids [T] → [T, dim] (into `out` when given). */
  forward(ids: ArrayLike<number>, out?: Float32Array): Float32Array {
    return embedding(this.weight, ids, out);
  }
}
