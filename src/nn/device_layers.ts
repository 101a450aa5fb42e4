// Layers over Backend v2 (src/tensor/device.ts): inputs and outputs are device buffers the caller owns (each
// forward writes into `out`), parameters stay host tensors that the device mirrors. The language model is built
// from these; nothing here touches buffer contents.
import type { Buf, DeviceOps, LoraSegment } from '../tensor/device.js';
import type { Tensor } from '../tensor/tensor.js';
import type { WeightSource } from './weights.js';

/** Rows [rowStart, rowStart + rows) of a batch that use one LoRA adapter (null: the base weight only). */
export interface AdapterRun {
  rowStart: number;
  rows: number;
  adapter: string | null;
}

export interface LoraAdapter {
  A: Tensor; // [r, in]
  B: Tensor; // [out, r]
  scale: number; // lora_alpha / r
}

/**
 * y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, the adapter chosen per run of rows (unmerged: one base copy, any mix of adapters in
 * one call; the two rank-r GEMMs cost ~10% of the base at Phi-4-mini's r = 256/320).
 */
export class LoraLinear {
  private readonly map: Map<string, LoraAdapter>;

  constructor(readonly weight: Tensor, adapters: ReadonlyMap<string, LoraAdapter> = new Map()) {
    this.map = new Map(adapters);
  }

  /** The adapters attached so far, by name. */
  get adapters(): ReadonlyMap<string, LoraAdapter> {
    return this.map;
  }

  /** Adds an adapter after construction (lazy loading reads them on first use); A [r, in], B [out, r]. */
  attach(name: string, ad: LoraAdapter): void {
    const r = ad.A.shape[0]!;
    if (ad.A.shape[1] !== this.inFeatures || ad.B.shape[0] !== this.outFeatures || ad.B.shape[1] !== r) {
      throw new Error(`LoRA "${name}": A ${JSON.stringify(ad.A.shape)} / B ${JSON.stringify(ad.B.shape)} do not fit a [${this.outFeatures}, ${this.inFeatures}] weight`);
    }
    this.map.set(name, ad);
  }

  get inFeatures(): number {
    return this.weight.shape[1]!;
  }

  get outFeatures(): number {
    return this.weight.shape[0]!;
  }

  /** x [m, in] → out [m, out]. */
  forward(dev: DeviceOps, x: Buf, m: number, out: Buf, runs: readonly AdapterRun[] = []): void {
    const segs: LoraSegment[] = [];
    for (const r of runs) {
      if (r.adapter === null || r.rows === 0) continue;
      const ad = this.map.get(r.adapter);
      if (!ad) throw new Error(`no "${r.adapter}" LoRA adapter is loaded: the checkpoint config declares none; use mode 'language'`);
      segs.push({ rowStart: r.rowStart, rows: r.rows, a: ad.A, b: ad.B, scale: ad.scale });
    }
    dev.linear(x, m, this.weight, out, segs);
  }
}

/** peft layout: `{prefix}.base_layer.weight` and `{prefix}.lora_{A,B}.{name}.weight` per declared adapter. */
export function loadLoraLinear(ws: WeightSource, prefix: string, inFeatures: number, outFeatures: number, adapters: Record<string, { r: number; lora_alpha: number } | null | undefined>): LoraLinear {
  const weight = ws.take(`${prefix}.base_layer.weight`, [outFeatures, inFeatures]);
  const map = new Map<string, LoraAdapter>();
  for (const [name, cfg] of Object.entries(adapters)) if (cfg) map.set(name, loadLoraAdapter(ws, prefix, inFeatures, outFeatures, name, cfg));
  return new LoraLinear(weight, map);
}

/** One adapter of the linear at `prefix` (peft: `{prefix}.lora_{A,B}.{name}.weight`), stored as the policy says. */
export function loadLoraAdapter(ws: WeightSource, prefix: string, inFeatures: number, outFeatures: number, name: string, cfg: { r: number; lora_alpha: number }): LoraAdapter {
  // Declared by the config, so required (strict loading reports them if absent).
  const A = ws.take(`${prefix}.lora_A.${name}.weight`, [cfg.r, inFeatures]);
  const B = ws.take(`${prefix}.lora_B.${name}.weight`, [outFeatures, cfg.r]);
  return { A, B, scale: cfg.lora_alpha / cfg.r };
}

export class DeviceRMSNorm {
  readonly weight: Float32Array; // [dim]
  constructor(ws: WeightSource, prefix: string, readonly dim: number, readonly eps: number) {
    this.weight = ws.take(`${prefix}.weight`, [dim], 'f32').f32();
  }
  /** x [rows, dim] → out [rows, dim] (may alias x). */
  forward(dev: DeviceOps, x: Buf, rows: number, out: Buf): void {
    dev.rmsNorm(x, rows, this.dim, this.weight, this.eps, out);
  }
}

/** up · silu(gate) of a fused [gate | up] projection (Phi-3 MLP). */
export class SwiGLU {
  constructor(readonly inter: number) {}
  /** gu [rows, 2·inter] → out [rows, inter]. */
  forward(dev: DeviceOps, gu: Buf, rows: number, out: Buf): void {
    dev.swiglu(gu, rows, this.inter, out);
  }
}

/** Partial rotary embedding of the heads in a fused projection row; cos/sin [rows, rotaryDim] come per row. */
export class RoPE {
  constructor(readonly headDim: number, readonly rotaryDim: number) {}
  /** In place on `nHeads` heads starting at column `offset` of x [rows, rowStride]. */
  forward(dev: DeviceOps, x: Buf, rows: number, rowStride: number, offset: number, nHeads: number, cos: Buf, sin: Buf): void {
    dev.rope(x, rows, rowStride, offset, nHeads, this.headDim, this.rotaryDim, cos, sin);
  }
}
