// The one table of name differences between the transformers-native layout and the hub's original layout
// (canonical in this project). Rules are tried in order; the first match wins; names no rule matches are
// the same in both layouts. Sources: transformers' convert_phi4_multimodal_weights_to_hf.py (run backwards),
// checked against every entry of the golden name_mapping.json (test/lm/mapping.test.ts).
const A = String.raw`^(model\.embed_tokens_extend\.audio_embed)`;
const ENC = String.raw`^(model\.embed_tokens_extend\.audio_embed\.encoder\.encoders\.\d+)`;
const IMG = String.raw`^(model\.embed_tokens_extend\.image_embed)`;

export const HF_TO_ORIG_RULES: ReadonlyArray<readonly [RegExp, string]> = [
  [new RegExp(`${A}\\.up_proj_for_speech\\.`), '$1.audio_projection.speech.0.'],
  [new RegExp(`${A}\\.down_proj_for_speech\\.`), '$1.audio_projection.speech.2.'],
  [new RegExp(`${A}\\.up_proj_for_vision_speech\\.`), '$1.audio_projection.vision.0.'],
  [new RegExp(`${A}\\.down_proj_for_vision_speech\\.`), '$1.audio_projection.vision.2.'],
  [new RegExp(`${ENC}\\.(feed_forward_(?:in|out))\\.gate_up_proj\\.`), '$1.$2.net.0.linear.'],
  [new RegExp(`${ENC}\\.(feed_forward_(?:in|out))\\.down_proj\\.`), '$1.$2.net.2.'],
  [new RegExp(`${ENC}\\.self_attn\\.([qkv])_proj\\.`), '$1.self_attn.linear_$2.'],
  [new RegExp(`${ENC}\\.self_attn\\.o_proj\\.`), '$1.self_attn.linear_out.'],
  [new RegExp(`${IMG}\\.global_img_feature_extensor$`), '$1.glb_GN'],
  [new RegExp(`${IMG}\\.sub_img_feature_extensor$`), '$1.sub_GN'],
  [new RegExp(`${IMG}\\.img_projection_up\\.`), '$1.img_projection.0.'],
  [new RegExp(`${IMG}\\.img_projection_down\\.`), '$1.img_projection.2.'],
  [/^(model\.layers\.\d+\.(?:self_attn\.(?:qkv|o)_proj|mlp\.(?:gate_up|down)_proj))\.weight$/, '$1.base_layer.weight'],
];

/** A transformers-layout base tensor name → its original-layout name. */
export function hfToOrig(name: string): string {
  for (const [re, to] of HF_TO_ORIG_RULES) if (re.test(name)) return name.replace(re, to);
  return name;
}

/**
 * A key of `{vision,speech}-lora/adapter_model.safetensors` (`model.layers.N.<module>.lora_{A,B}.weight`, peft may
 * prefix `base_model.model.`) → the original layout's in-model name `...<module>.lora_{A,B}.<adapter>.weight`.
 */
export function adapterKeyToOrig(key: string, adapter: 'vision' | 'speech'): string {
  const m = /^(?:base_model\.model\.)?(model\.layers\.\d+\.(?:self_attn|mlp)\.\w+)\.lora_([AB])\.weight$/.exec(key);
  if (!m) throw new Error(`unexpected key "${key}" in ${adapter}-lora/adapter_model.safetensors (expected model.layers.N.<module>.lora_{A,B}.weight)`);
  return `${m[1]}.lora_${m[2]}.${adapter}.weight`;
}
