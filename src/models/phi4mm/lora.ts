// Base linears with their LoRA adapters (original remote code: peft adapters "vision" and "speech" on
// qkv_proj, o_proj, gate_up_proj, down_proj of every decoder layer). The adapter is picked per forward from the
// input mode (golden README §8): language → none, vision and vision_speech → vision, speech → speech.
import type { Backend } from '../../tensor/backend.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { WeightSource } from '../../nn/weights.js';
import type { LoraConfig } from './config.js';
import type { Scratch } from './decoder_scratch.js';
export { loraAdapterFor, type InputMode } from './multimodal.js';

export type Adapter = 'vision' | 'speech';
export type LoraConfigs = Partial<Record<Adapter, LoraConfig | null>>;

/**
 * y = W·x + s·B·(A·x), s = lora_alpha / r, applied at run time (unmerged).
 * Why not merged: merging needs a second copy of every adapted weight per adapter (~3.8 B parameters of the LM),
 * or a merge/unmerge per request when requests switch modality; with a quantized base (Q4_K/Q8_0) a merge would
 * also re-quantize. Unmerged costs two skinny GEMMs of rank r (256/320 against 3072–16384 features: ~10% of the
 * base FLOPs), keeps one base copy, and switching adapter costs nothing. A, B and the base weight all follow the
 * storage policy (f32, bf16, q4_k, q8_0); the default policy keeps A and B in bf16.
 */
export class LoraLinear {
  readonly weight: Tensor; // base_layer.weight [out, in]
  readonly adapters = new Map<Adapter, { A: Tensor; B: Tensor; scale: number }>(); // A [r, in], B [out, r]

  constructor(ws: WeightSource, prefix: string, readonly inFeatures: number, readonly outFeatures: number, loras: LoraConfigs) {
    this.weight = ws.take(`${prefix}.base_layer.weight`, [outFeatures, inFeatures]);
    for (const name of ['vision', 'speech'] as const) {
      const cfg = loras[name];
      if (!cfg) continue;
      // The config declares the adapter, so its tensors are required (strict loading reports them if absent).
      // Stored as the policy says (bf16 for bf16 checkpoints: lossless, and half of f32's 3.3 GB at real size).
      const A = ws.take(`${prefix}.lora_A.${name}.weight`, [cfg.r, inFeatures]);
      const B = ws.take(`${prefix}.lora_B.${name}.weight`, [outFeatures, cfg.r]);
      this.adapters.set(name, { A, B, scale: cfg.lora_alpha / cfg.r });
    }
  }

  /** x [m, in] → out [m, out] (written into `out`). */
  forward(be: Backend, x: Float32Array, m: number, adapter: Adapter | null, out: Float32Array, scratch: Scratch): Float32Array {
    be.linear(x, m, this.weight, null, out);
    if (!adapter) return out;
    const ad = this.adapters.get(adapter);
    if (!ad) throw new Error(`no "${adapter}" LoRA adapter is loaded: the checkpoint config declares none; use mode 'language'`);
    const r = ad.A.shape[0]!;
    const ax = be.linear(x, m, ad.A, null, scratch.get('lora.ax', m * r)); // [m, r]
    const bax = be.linear(ax, m, ad.B, null, scratch.get('lora.bax', m * this.outFeatures)); // [m, out]
    for (let i = 0; i < out.length; i++) out[i]! += ad.scale * bax[i]!;
    return out;
  }
}
