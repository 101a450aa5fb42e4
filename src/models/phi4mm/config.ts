// Phi4MMConfig from a checkpoint's config.json, for both layouts:
//  - the hub's original one (`model_type: "phi4mm"`: `embd_layer`, `audio_processor.config`, `vision_lora`,
//    `speech_lora`; the SigLIP tower sizes are hard-coded in the remote code), and
//  - the transformers-native one (`model_type: "phi4_multimodal"`: `vision_config`, `audio_config`, adapters
//    in `vision-lora/` and `speech-lora/` folders with their own adapter_config.json).
// Text fields keep the config.json key names; vision/audio are normalised to the transformers key names.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VisionConfig } from './vision.js';
import type { AudioConfig } from './audio_encoder.js';

export type Layout = 'orig' | 'hf';

export interface RopeScaling {
  type: 'longrope';
  short_factor: number[]; // [rotaryDim / 2]
  long_factor: number[]; // [rotaryDim / 2]
}

/** A LoRA adapter: scale = lora_alpha / r (peft default, no rsLoRA). */
export interface LoraConfig {
  r: number;
  lora_alpha: number;
}

export interface TextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  partial_rotary_factor: number;
  rope_theta: number;
  rope_scaling: RopeScaling | null;
  max_position_embeddings: number;
  original_max_position_embeddings: number;
  rms_norm_eps: number;
  tie_word_embeddings: boolean;
  bos_token_id: number;
  pad_token_id: number;
}

export interface Phi4MMConfig {
  layout: Layout;
  text: TextConfig;
  vision_config: VisionConfig;
  audio_config: AudioConfig;
  vision_lora: LoraConfig | null;
  speech_lora: LoraConfig | null;
  /** config.json `eos_token_id` as a list (the generation stop ids come from generation_config.json). */
  eos_token_id: number[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const IMAGE_TOKEN_ID = 200010;
export const AUDIO_TOKEN_ID = 200011;
/** `<|endoftext|>`: bos/eos/pad of Phi-4-mini when config.json omits them. */
const ENDOFTEXT_ID = 199999;

/** SigLIP-so400m/14-448, which the original remote code builds from a hard-coded config. */
export const SIGLIP_SO400M: VisionConfig = {
  hidden_size: 1152, intermediate_size: 4304, num_hidden_layers: 27, num_attention_heads: 16,
  image_size: 448, patch_size: 14, layer_norm_eps: 1e-6, crop_size: 448, image_token_id: IMAGE_TOKEN_ID,
};

type Json = Record<string, unknown>;

function num(o: Json, key: string, where: string, fallback?: number): number {
  const v = o[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${where}: "${key}" must be a number (got ${JSON.stringify(o[key])})`);
  return v;
}

/** A size: a positive integer. */
function size(o: Json, key: string, where: string, fallback?: number): number {
  const v = num(o, key, where, fallback);
  if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`${where}: "${key}" must be a positive integer (got ${v})`);
  return v;
}

function readJson(p: string): Json {
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Json;
  } catch (e) {
    throw new ConfigError(`${p} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Read `<dir>/config.json` (and, for the transformers layout, `<dir>/{vision,speech}-lora/adapter_config.json`). */
export function loadConfig(dir: string): Phi4MMConfig {
  const p = join(dir, 'config.json');
  if (!existsSync(p)) throw new ConfigError(`${dir} has no config.json: not a checkpoint folder`);
  return parseConfig(readJson(p), p, (sub) => {
    const f = join(dir, sub, 'adapter_config.json');
    return existsSync(f) ? readJson(f) : null;
  });
}

/** `adapterConfig(folder)` reads `<folder>/adapter_config.json` (transformers layout only). */
export function parseConfig(raw: Json, where: string, adapterConfig: (folder: string) => Json | null = () => null): Phi4MMConfig {
  const mt = raw['model_type'];
  const layout: Layout = mt === 'phi4mm' ? 'orig' : mt === 'phi4_multimodal' ? 'hf' : (() => {
    throw new ConfigError(`${where}: model_type ${JSON.stringify(mt)} is not Phi-4-multimodal ("phi4mm" or "phi4_multimodal")`);
  })();
  const text = parseText(raw, where);
  const eos = raw['eos_token_id'];
  const eosIds = Array.isArray(eos) ? (eos as number[]) : typeof eos === 'number' ? [eos] : [ENDOFTEXT_ID];
  if (layout === 'orig') {
    return {
      layout, text, eos_token_id: eosIds,
      vision_config: origVision(raw, where),
      audio_config: origAudio(raw, where),
      vision_lora: lora(raw['vision_lora'] as Json | undefined, `${where} vision_lora`),
      speech_lora: lora(raw['speech_lora'] as Json | undefined, `${where} speech_lora`),
    };
  }
  const vc = raw['vision_config'] as Json | undefined, ac = raw['audio_config'] as Json | undefined;
  if (!vc || !ac) throw new ConfigError(`${where}: a transformers-layout config needs "vision_config" and "audio_config"`);
  return {
    layout, text, eos_token_id: eosIds,
    vision_config: hfVision(vc, `${where} vision_config`),
    audio_config: hfAudio(ac, `${where} audio_config`),
    vision_lora: lora(adapterConfig('vision-lora') ?? undefined, 'vision-lora/adapter_config.json'),
    speech_lora: lora(adapterConfig('speech-lora') ?? undefined, 'speech-lora/adapter_config.json'),
  };
}

function parseText(raw: Json, where: string): TextConfig {
  const heads = size(raw, 'num_attention_heads', where);
  const maxPos = size(raw, 'max_position_embeddings', where);
  const t: TextConfig = {
    vocab_size: size(raw, 'vocab_size', where),
    hidden_size: size(raw, 'hidden_size', where),
    intermediate_size: size(raw, 'intermediate_size', where),
    num_hidden_layers: size(raw, 'num_hidden_layers', where),
    num_attention_heads: heads,
    num_key_value_heads: size(raw, 'num_key_value_heads', where, heads),
    partial_rotary_factor: num(raw, 'partial_rotary_factor', where, 1),
    rope_theta: num(raw, 'rope_theta', where, 10000),
    rope_scaling: null,
    max_position_embeddings: maxPos,
    original_max_position_embeddings: size(raw, 'original_max_position_embeddings', where, maxPos),
    rms_norm_eps: num(raw, 'rms_norm_eps', where, 1e-5),
    tie_word_embeddings: raw['tie_word_embeddings'] !== false,
    bos_token_id: num(raw, 'bos_token_id', where, ENDOFTEXT_ID),
    pad_token_id: num(raw, 'pad_token_id', where, ENDOFTEXT_ID),
  };
  if (t.hidden_size % t.num_attention_heads !== 0) throw new ConfigError(`${where}: hidden_size ${t.hidden_size} is not a multiple of num_attention_heads ${t.num_attention_heads}`);
  if (t.num_attention_heads % t.num_key_value_heads !== 0) throw new ConfigError(`${where}: num_attention_heads ${t.num_attention_heads} is not a multiple of num_key_value_heads ${t.num_key_value_heads}`);
  const rot = rotaryDim(t);
  if (!(t.partial_rotary_factor > 0 && t.partial_rotary_factor <= 1) || rot % 2 !== 0) {
    throw new ConfigError(`${where}: partial_rotary_factor ${t.partial_rotary_factor} gives rotary dim ${rot} of head dim ${t.hidden_size / t.num_attention_heads}; it must be in (0, 1] and give an even dim`);
  }
  const rs = raw['rope_scaling'] as Json | null | undefined;
  if (rs) {
    const type = rs['type'] ?? rs['rope_type'];
    if (type !== 'longrope') throw new ConfigError(`${where}: rope_scaling type ${JSON.stringify(type)} is not supported (Phi-4 uses "longrope")`);
    const sf = rs['short_factor'], lf = rs['long_factor'];
    const ok = (f: unknown): f is number[] => Array.isArray(f) && f.length === rot / 2 && f.every((x) => typeof x === 'number' && x > 0);
    if (!ok(sf) || !ok(lf)) throw new ConfigError(`${where}: rope_scaling short_factor/long_factor must each be rotary_dim/2 = ${rot / 2} positive numbers`);
    t.rope_scaling = { type: 'longrope', short_factor: sf, long_factor: lf };
  }
  return t;
}

/** Head dims that get rotated: floor(head_dim · partial_rotary_factor) (Phi-4-mini: 96 of 128). */
export function rotaryDim(t: TextConfig): number {
  return Math.floor((t.hidden_size / t.num_attention_heads) * t.partial_rotary_factor);
}

function lora(o: Json | undefined, where: string): LoraConfig | null {
  if (!o) return null;
  return { r: size(o, 'r', where), lora_alpha: num(o, 'lora_alpha', where) };
}

function hfVision(v: Json, where: string): VisionConfig {
  return {
    hidden_size: size(v, 'hidden_size', where), intermediate_size: size(v, 'intermediate_size', where),
    num_hidden_layers: size(v, 'num_hidden_layers', where), num_attention_heads: size(v, 'num_attention_heads', where),
    image_size: size(v, 'image_size', where, 448), patch_size: size(v, 'patch_size', where, 14),
    layer_norm_eps: num(v, 'layer_norm_eps', where, 1e-6), crop_size: size(v, 'crop_size', where, 448),
    image_token_id: num(v, 'image_token_id', where, IMAGE_TOKEN_ID), feature_layer: num(v, 'feature_layer', where, -2),
  };
}

function origVision(raw: Json, where: string): VisionConfig {
  // An explicit vision_config wins. Fixture convention: the golden model_orig/config.json carries its tiny
  // tower as a JSON object inside the string `_vision_tower_note`. Otherwise the remote code's so400m tower.
  if (raw['vision_config']) return hfVision(raw['vision_config'] as Json, `${where} vision_config`);
  const note = raw['_vision_tower_note'];
  if (typeof note === 'string' && note.includes('{')) {
    let js: Json;
    try {
      js = JSON.parse(note.slice(note.indexOf('{'), note.lastIndexOf('}') + 1)) as Json;
    } catch (e) {
      throw new ConfigError(`${where}: _vision_tower_note holds no valid JSON object: ${(e as Error).message}`);
    }
    return hfVision(js, `${where} _vision_tower_note`);
  }
  const crop = ((raw['embd_layer'] as Json | undefined)?.['image_embd_layer'] as Json | undefined)?.['crop_size'];
  return { ...SIGLIP_SO400M, ...(typeof crop === 'number' ? { crop_size: crop } : {}) };
}

function origAudio(raw: Json, where: string): AudioConfig {
  const c = (raw['audio_processor'] as Json | undefined)?.['config'] as Json | undefined;
  if (!c) throw new ConfigError(`${where}: the original layout needs "audio_processor.config"`);
  const w = `${where} audio_processor.config`;
  const nemo = (c['nemo_conv_settings'] as Json | undefined) ?? {};
  const rel = (c['relative_attention_bias_args'] as Json | undefined) ?? {};
  const cr = ((raw['embd_layer'] as Json | undefined)?.['audio_embd_layer'] as Json | undefined)?.['compression_rate'];
  return {
    hidden_size: size(c, 'attention_dim', w), intermediate_size: size(c, 'linear_units', w),
    num_blocks: size(c, 'num_blocks', w), num_attention_heads: size(c, 'attention_heads', w),
    input_size: size(c, 'input_size', w, 80), time_reduction: size(c, 'time_reduction', w, typeof cr === 'number' ? cr : 8),
    nemo_conv_channels: size(nemo, 'conv_channels', `${w} nemo_conv_settings`, num(c, 'attention_dim', w)),
    kernel_size: size(c, 'kernel_size', w, 3), ext_pw_out_channel: size(c, 'ext_pw_out_channel', w),
    depthwise_seperable_out_channel: size(c, 'depthwise_seperable_out_channel', w), depthwise_multiplier: size(c, 'depthwise_multiplier', w, 1),
    bias_max_distance: size(rel, 't5_bias_max_distance', `${w} relative_attention_bias_args`, 500),
    bias_symmetric: rel['t5_bias_symmetric'] === true,
    left_chunk: num(c, 'left_chunk', w, 18), chunk_size: num(c, 'chunk_size', w, -1), audio_token_id: AUDIO_TOKEN_ID,
  };
}

function hfAudio(a: Json, where: string): AudioConfig {
  return {
    hidden_size: size(a, 'hidden_size', where), intermediate_size: size(a, 'intermediate_size', where),
    num_blocks: size(a, 'num_blocks', where), num_attention_heads: size(a, 'num_attention_heads', where),
    input_size: size(a, 'input_size', where, 80), time_reduction: size(a, 'time_reduction', where, 8),
    nemo_conv_channels: size(a, 'nemo_conv_channels', where), kernel_size: size(a, 'kernel_size', where, 3),
    ext_pw_out_channel: size(a, 'ext_pw_out_channel', where), depthwise_seperable_out_channel: size(a, 'depthwise_seperable_out_channel', where),
    depthwise_multiplier: size(a, 'depthwise_multiplier', where, 1), bias_max_distance: size(a, 'bias_max_distance', where, 500),
    bias_symmetric: a['bias_symmetric'] === true, left_chunk: num(a, 'left_chunk', where, 18), chunk_size: num(a, 'chunk_size', where, -1),
    audio_token_id: num(a, 'audio_token_id', where, AUDIO_TOKEN_ID),
  };
}
