// The real Phi-4-multimodal-instruct configuration (hub main branch, original layout), as far as it can be
// reconstructed offline: text values from the model card/config copies, audio from the conformer config
// (SPEC §4.7), vision tower = SigLIP-so400m/14-448 (hard-coded in the remote code), LoRA r/alpha 256/512 and
// 320/640. Used by the real-size random checkpoint generator.
export const REAL_TEXT = {
  vocab_size: 200064,
  hidden_size: 3072,
  intermediate_size: 8192,
  num_hidden_layers: 32,
  num_attention_heads: 24,
  num_key_value_heads: 8,
  max_position_embeddings: 131072,
  original_max_position_embeddings: 4096,
};

export const REAL_VISION = { hidden_size: 1152, intermediate_size: 4304, num_hidden_layers: 27, num_attention_heads: 16, patch_size: 14, image_size: 448 };

export const REAL_AUDIO = { attention_dim: 1024, attention_heads: 16, linear_units: 1536, num_blocks: 24, conv_channels: 1024, t5_bias_max_distance: 500, input_size: 80 };

export const REAL_LORA = { vision: { r: 256, lora_alpha: 512 }, speech: { r: 320, lora_alpha: 640 } };

// LongRoPE factors of Phi-4-mini (48 per rotary half of 96 dims). Only their shape and magnitude matter for a
// random-weight speed benchmark; the short factors are the published Phi-4-mini values' range, rounded.
function ramp(n: number, from: number, to: number): number[] {
  return Array.from({ length: n }, (_, i) => +(from * (to / from) ** (i / (n - 1))).toFixed(4));
}

export function realConfigJson(): Record<string, unknown> {
  const t = REAL_TEXT;
  return {
    architectures: ['Phi4MMForCausalLM'],
    model_type: 'phi4mm',
    ...t,
    resid_pdrop: 0.0, embd_pdrop: 0.0, attention_dropout: 0.0, attention_bias: false,
    hidden_act: 'silu', initializer_range: 0.02, rms_norm_eps: 1e-5, use_cache: true, tie_word_embeddings: true,
    rope_theta: 10000.0,
    rope_scaling: { type: 'longrope', short_factor: ramp(48, 1.0, 3.0), long_factor: ramp(48, 1.0, 60.0) },
    partial_rotary_factor: 0.75,
    bos_token_id: 199999, eos_token_id: 199999, pad_token_id: 199999,
    sliding_window: 262144,
    torch_dtype: 'bfloat16',
    img_processor: null,
    embd_layer: {
      embedding_cls: 'image_audio',
      image_embd_layer: { embedding_cls: 'tune_image', crop_size: 448, hd_transform_order: 'sub_glb', image_token_compression_cls: 'avg_pool_2d', projection_cls: 'mlp', use_hd_transform: true, with_learnable_separator: true, enable_gradient_checkpointing: true },
      audio_embd_layer: { embedding_cls: 'audio', compression_rate: 8, downsample_rate: 1, projection_cls: 'mlp', use_qformer: false, use_conv_downsample: false, enable_gradient_checkpointing: true },
    },
    audio_processor: {
      name: 'cascades',
      config: {
        input_layer: 'nemo_conv', input_size: REAL_AUDIO.input_size, attention_dim: REAL_AUDIO.attention_dim, attention_heads: REAL_AUDIO.attention_heads,
        linear_units: REAL_AUDIO.linear_units, num_blocks: REAL_AUDIO.num_blocks, time_reduction: 8, causal: true,
        activation: 'swish', conv_activation: 'swish', conv_glu_type: 'swish', bias_in_glu: true, batch_norm: false, cnn_layer_norm: true,
        kernel_size: 3, ext_pw_kernel_size: 1, ext_pw_out_channel: 1024, depthwise_seperable_out_channel: 1024, depthwise_multiplier: 1,
        chunk_size: -1, left_chunk: 18, dropout_rate: 0.0,
        encoder_embedding_config: { input_size: 80 },
        nemo_conv_settings: { conv_channels: REAL_AUDIO.conv_channels },
        relative_attention_bias_args: { type: 't5', t5_bias_max_distance: REAL_AUDIO.t5_bias_max_distance },
        activation_checkpointing: '',
      },
    },
    vision_lora: { r: 256, lora_alpha: 512, dp: 0.0, layer: 'layers.*((self_attn\\.(qkv_proj|o_proj))|(mlp\\.(gate_up|down)_proj))' },
    speech_lora: { r: 320, lora_alpha: 640, dp: 0.01, layer: '((layers.*self_attn\\.(qkv|o)_proj)|(layers.*mlp\\.(gate_up|down)_proj))' },
  };
}

export interface TensorSpec {
  name: string;
  shape: number[];
  /** Roughly the std of a sane init: 1/sqrt(fan_in) for matrices, 1 for norm gains (then `ones`). */
  kind: 'matrix' | 'ones' | 'zeros' | 'small';
}

/** Every tensor of the original-layout checkpoint, in a stable order (text, vision, audio). */
export function realTensorSpecs(): TensorSpec[] {
  const t = REAL_TEXT, v = REAL_VISION, a = REAL_AUDIO;
  const out: TensorSpec[] = [];
  const mat = (name: string, shape: number[]) => out.push({ name, shape, kind: 'matrix' });
  const vec = (name: string, n: number, kind: TensorSpec['kind'] = 'small') => out.push({ name, shape: [n], kind });
  const hd = t.hidden_size / t.num_attention_heads;
  const qkv = (t.num_attention_heads + 2 * t.num_key_value_heads) * hd;
  mat('model.embed_tokens.weight', [t.vocab_size, t.hidden_size]);
  for (let l = 0; l < t.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    vec(`${p}.input_layernorm.weight`, t.hidden_size, 'ones');
    vec(`${p}.post_attention_layernorm.weight`, t.hidden_size, 'ones');
    const linears: Array<[string, number, number]> = [
      ['self_attn.qkv_proj', qkv, t.hidden_size], ['self_attn.o_proj', t.hidden_size, t.hidden_size],
      ['mlp.gate_up_proj', 2 * t.intermediate_size, t.hidden_size], ['mlp.down_proj', t.hidden_size, t.intermediate_size],
    ];
    for (const [m, o, i] of linears) {
      mat(`${p}.${m}.base_layer.weight`, [o, i]);
      for (const [ad, { r }] of Object.entries(REAL_LORA)) {
        mat(`${p}.${m}.lora_A.${ad}.weight`, [r, i]);
        out.push({ name: `${p}.${m}.lora_B.${ad}.weight`, shape: [o, r], kind: 'small' });
      }
    }
  }
  vec('model.norm.weight', t.hidden_size, 'ones');

  const ie = 'model.embed_tokens_extend.image_embed';
  const vp = `${ie}.img_processor`;
  mat(`${vp}.embeddings.patch_embedding.weight`, [v.hidden_size, 3, v.patch_size, v.patch_size]);
  vec(`${vp}.embeddings.patch_embedding.bias`, v.hidden_size);
  mat(`${vp}.embeddings.position_embedding.weight`, [(v.image_size / v.patch_size) ** 2, v.hidden_size]);
  const vitBlock = (p: string) => {
    for (const n of ['layer_norm1', 'layer_norm2']) { vec(`${p}.${n}.weight`, v.hidden_size, 'ones'); vec(`${p}.${n}.bias`, v.hidden_size, 'zeros'); }
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) { mat(`${p}.self_attn.${n}.weight`, [v.hidden_size, v.hidden_size]); vec(`${p}.self_attn.${n}.bias`, v.hidden_size); }
    mat(`${p}.mlp.fc1.weight`, [v.intermediate_size, v.hidden_size]); vec(`${p}.mlp.fc1.bias`, v.intermediate_size);
    mat(`${p}.mlp.fc2.weight`, [v.hidden_size, v.intermediate_size]); vec(`${p}.mlp.fc2.bias`, v.hidden_size);
  };
  for (let l = 0; l < v.num_hidden_layers; l++) vitBlock(`${vp}.encoder.layers.${l}`);
  vec(`${vp}.post_layernorm.weight`, v.hidden_size, 'ones'); vec(`${vp}.post_layernorm.bias`, v.hidden_size, 'zeros');
  out.push({ name: `${vp}.head.probe`, shape: [1, 1, v.hidden_size], kind: 'small' });
  mat(`${vp}.head.attention.in_proj_weight`, [3 * v.hidden_size, v.hidden_size]); vec(`${vp}.head.attention.in_proj_bias`, 3 * v.hidden_size);
  mat(`${vp}.head.attention.out_proj.weight`, [v.hidden_size, v.hidden_size]); vec(`${vp}.head.attention.out_proj.bias`, v.hidden_size);
  vec(`${vp}.head.layernorm.weight`, v.hidden_size, 'ones'); vec(`${vp}.head.layernorm.bias`, v.hidden_size, 'zeros');
  mat(`${vp}.head.mlp.fc1.weight`, [v.intermediate_size, v.hidden_size]); vec(`${vp}.head.mlp.fc1.bias`, v.intermediate_size);
  mat(`${vp}.head.mlp.fc2.weight`, [v.hidden_size, v.intermediate_size]); vec(`${vp}.head.mlp.fc2.bias`, v.hidden_size);
  out.push({ name: `${ie}.glb_GN`, shape: [1, 1, v.hidden_size], kind: 'small' });
  out.push({ name: `${ie}.sub_GN`, shape: [1, 1, 1, v.hidden_size], kind: 'small' });
  mat(`${ie}.img_projection.0.weight`, [t.hidden_size, v.hidden_size]); vec(`${ie}.img_projection.0.bias`, t.hidden_size);
  mat(`${ie}.img_projection.2.weight`, [t.hidden_size, t.hidden_size]); vec(`${ie}.img_projection.2.bias`, t.hidden_size);

  const ae = 'model.embed_tokens_extend.audio_embed';
  const en = `${ae}.encoder`;
  const c = a.conv_channels, d = a.attention_dim;
  vec(`${en}.encoder_embedding.global_mean`, a.input_size, 'small');
  vec(`${en}.encoder_embedding.global_invstd`, a.input_size, 'ones');
  mat(`${en}.embed.conv.0.weight`, [c, 1, 3, 3]); vec(`${en}.embed.conv.0.bias`, c);
  for (const [dw, pw] of [[2, 3], [5, 6]] as const) {
    mat(`${en}.embed.conv.${dw}.weight`, [c, 1, 3, 3]); vec(`${en}.embed.conv.${dw}.bias`, c);
    mat(`${en}.embed.conv.${pw}.weight`, [c, c, 1, 1]); vec(`${en}.embed.conv.${pw}.bias`, c);
  }
  mat(`${en}.embed.out.weight`, [d, c * (a.input_size / 8)]); vec(`${en}.embed.out.bias`, d);
  out.push({ name: `${en}.relative_attention_bias_layer.bias_values.weight`, shape: [2 * a.t5_bias_max_distance, a.attention_heads], kind: 'small' });
  for (let l = 0; l < a.num_blocks; l++) {
    const p = `${en}.encoders.${l}`;
    for (const ff of ['feed_forward_in', 'feed_forward_out']) {
      vec(`${p}.${ff}.layer_norm.weight`, d, 'ones'); vec(`${p}.${ff}.layer_norm.bias`, d, 'zeros');
      mat(`${p}.${ff}.net.0.linear.weight`, [2 * a.linear_units, d]); vec(`${p}.${ff}.net.0.linear.bias`, 2 * a.linear_units);
      mat(`${p}.${ff}.net.2.weight`, [d, a.linear_units]); vec(`${p}.${ff}.net.2.bias`, d);
    }
    for (const n of ['linear_q', 'linear_k', 'linear_v', 'linear_out']) { mat(`${p}.self_attn.${n}.weight`, [d, d]); vec(`${p}.self_attn.${n}.bias`, d); }
    vec(`${p}.conv.layer_norm.weight`, d, 'ones'); vec(`${p}.conv.layer_norm.bias`, d, 'zeros');
    mat(`${p}.conv.glu.ext_pw_conv_1d.weight`, [2 * d, d, 1]); vec(`${p}.conv.glu.ext_pw_conv_1d.bias`, 2 * d);
    out.push({ name: `${p}.conv.glu.b1`, shape: [1, d, 1], kind: 'small' }, { name: `${p}.conv.glu.b2`, shape: [1, d, 1], kind: 'small' });
    mat(`${p}.conv.dw_sep_conv_1d.dw_conv.weight`, [d, 1, 3]); vec(`${p}.conv.dw_sep_conv_1d.dw_conv.bias`, d);
    mat(`${p}.conv.dw_sep_conv_1d.pw_conv.weight`, [d, d, 1]); vec(`${p}.conv.dw_sep_conv_1d.pw_conv.bias`, d);
    mat(`${p}.conv.ext_pw_conv_1d.weight`, [d, d, 1]); vec(`${p}.conv.ext_pw_conv_1d.bias`, d);
    for (const n of ['layer_norm_att', 'layer_norm']) { vec(`${p}.${n}.weight`, d, 'ones'); vec(`${p}.${n}.bias`, d, 'zeros'); }
  }
  for (const mode of ['speech', 'vision']) {
    mat(`${ae}.audio_projection.${mode}.0.weight`, [t.hidden_size, d]); vec(`${ae}.audio_projection.${mode}.0.bias`, t.hidden_size);
    mat(`${ae}.audio_projection.${mode}.2.weight`, [t.hidden_size, t.hidden_size]); vec(`${ae}.audio_projection.${mode}.2.bias`, t.hidden_size);
  }
  return out;
}
