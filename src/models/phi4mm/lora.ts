// The decoder's LoRA adapters (original remote code: peft adapters "vision" and "speech" on qkv_proj, o_proj,
// gate_up_proj, down_proj of every decoder layer). The adapter is picked per sequence from its input mode
// (golden README §8): language → none, vision and vision_speech → vision, speech → speech; one batch may mix
// them (src/nn/device_layers.ts LoraLinear applies them per run of rows).
//
// Why unmerged: merging needs a second copy of every adapted weight per adapter (~3.8 B parameters of the LM),
// or a merge/unmerge per request when requests switch modality; with a quantized base (Q4_K/Q8_0) a merge would
// also re-quantize. A, B and the base weight all follow the storage policy; the default keeps A and B in bf16.
import type { WeightSource } from '../../nn/weights.js';
import { loadLoraLinear, type LoraLinear } from '../../nn/device_layers.js';
import type { LoraConfig } from './config.js';
export { LoraLinear } from '../../nn/device_layers.js';
export { loraAdapterFor, type InputMode } from './multimodal.js';

export type Adapter = 'vision' | 'speech';
export type LoraConfigs = Partial<Record<Adapter, LoraConfig | null>>;

/** `{prefix}.base_layer.weight` with the configured adapters. */
export function phi4LoraLinear(ws: WeightSource, prefix: string, inFeatures: number, outFeatures: number, loras: LoraConfigs): LoraLinear {
  return loadLoraLinear(ws, prefix, inFeatures, outFeatures, { vision: loras.vision, speech: loras.speech });
}
