// The decoder's LoRA adapters (original remote code: peft adapters "vision" and "speech" on qkv_proj, o_proj,
// gate_up_proj, down_proj of every decoder layer). The adapter is picked per sequence from its input mode
// (golden README §8): language → none, vision and vision_speech → vision, speech → speech; one batch may mix
// them (src/nn/device_layers.ts LoraLinear applies them per run of rows).
//
// Why unmerged: merging needs a second copy of every adapted weight per adapter (~3.8 B parameters of the LM),
// or a merge/unmerge per request when requests switch modality; with a quantized base (Q4_K/Q8_0) a merge would
// also re-quantize. A, B and the base weight all follow the storage policy; the default keeps A and B in bf16.
//
// Each adapter is one part of the model: loaded as a whole (every target's A and B), at load or, with lazy
// loading, on the first forward whose rows use it (Phi4MiniDecoder.useAdapter).
import type { WeightSource } from '../../nn/weights.js';
import { loadLoraAdapter, type LoraAdapter } from '../../nn/device_layers.js';
import type { LoraConfig, TextConfig } from './config.js';
export { LoraLinear } from '../../nn/device_layers.js';
export { loraAdapterFor, type InputMode } from './multimodal.js';

export type Adapter = 'vision' | 'speech';
export type LoraConfigs = Partial<Record<Adapter, LoraConfig | null>>;

/** The adapted linears of a decoder layer, by their path under `model.layers.N` (the key tree). */
export type AdaptedPath = 'self_attn.qkv_proj' | 'self_attn.o_proj' | 'mlp.gate_up_proj' | 'mlp.down_proj';

export interface LoraTarget {
  layer: number;
  path: AdaptedPath;
  /** `model.layers.{layer}.{path}`. */
  prefix: string;
  inFeatures: number;
  outFeatures: number;
}

/**
 * Every adapted linear of the decoder with its [in, out] features, from the config alone (an adapter is checked
 * before the layers are read). The layers build the same shapes; LoraLinear.attach checks they agree.
 */
export function loraTargets(cfg: TextConfig, headDim: number): LoraTarget[] {
  const h = cfg.hidden_size, q = cfg.num_attention_heads * headDim, kv = cfg.num_key_value_heads * headDim, inter = cfg.intermediate_size;
  const dims: Array<[AdaptedPath, number, number]> = [['self_attn.qkv_proj', h, q + 2 * kv], ['self_attn.o_proj', q, h], ['mlp.gate_up_proj', h, 2 * inter], ['mlp.down_proj', inter, h]];
  return Array.from({ length: cfg.num_hidden_layers }, (_, layer) => dims.map(([path, inFeatures, outFeatures]) => ({ layer, path, prefix: `model.layers.${layer}.${path}`, inFeatures, outFeatures }))).flat();
}

/** One adapter's A and B for every target, by target prefix. */
export function loadAdapter(ws: WeightSource, name: Adapter, cfg: LoraConfig, targets: readonly LoraTarget[]): Map<string, LoraAdapter> {
  return new Map(targets.map((t) => [t.prefix, loadLoraAdapter(ws, t.prefix, t.inFeatures, t.outFeatures, name, cfg)]));
}
