// Config parsing for both checkpoint layouts: the same model must give the same normalised config.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, SIGLIP_SO400M, loadConfig, parseConfig, rotaryDim } from '../../src/models/phi4mm/config.js';
import { modelDir } from './load.js';

const rawOf = (layout: 'orig' | 'hf') => JSON.parse(readFileSync(join(modelDir(layout), 'config.json'), 'utf8'));

describe('Phi4MMConfig', () => {
  const orig = loadConfig(modelDir('orig')), hf = loadConfig(modelDir('hf'));
  const hfRaw = rawOf('hf');

  it('detects the layout from model_type', () => {
    expect(orig.layout).toBe('orig');
    expect(hf.layout).toBe('hf');
  });

  it('text fields keep the config.json keys and values (both layouts)', () => {
    for (const key of Object.keys(orig.text) as Array<keyof typeof orig.text>) {
      if (key === 'rope_scaling') continue;
      expect(orig.text[key], key).toEqual(hfRaw[key]);
      expect(hf.text[key], key).toEqual(hfRaw[key]);
    }
    expect(hf.text.rope_scaling).toEqual({ type: 'longrope', short_factor: hfRaw.rope_scaling.short_factor, long_factor: hfRaw.rope_scaling.long_factor });
    expect(orig.text.rope_scaling).toEqual(hf.text.rope_scaling);
    expect(rotaryDim(hf.text)).toBe(2 * hfRaw.rope_scaling.short_factor.length);
  });

  it('the original layout maps onto the transformers vision_config / audio_config', () => {
    for (const [k, v] of Object.entries(hf.vision_config)) expect(v, `vision ${k}`).toEqual(hfRaw.vision_config[k]);
    for (const [k, v] of Object.entries(hf.audio_config)) expect(v, `audio ${k}`).toEqual(hfRaw.audio_config[k]);
    expect(orig.vision_config).toEqual(hf.vision_config);
    expect(orig.audio_config).toEqual(hf.audio_config);
  });

  it('LoRA settings: config.json (original) and adapter_config.json (transformers) agree', () => {
    const raw = rawOf('orig');
    for (const [name, folder] of [['vision_lora', 'vision-lora'], ['speech_lora', 'speech-lora']] as const) {
      const ad = JSON.parse(readFileSync(join(modelDir('hf'), folder, 'adapter_config.json'), 'utf8'));
      expect(orig[name]).toEqual({ r: raw[name].r, lora_alpha: raw[name].lora_alpha });
      expect(hf[name]).toEqual({ r: ad.r, lora_alpha: ad.lora_alpha });
    }
  });

  it('original layout without a vision_config or fixture note: the remote code so400m tower', () => {
    const raw = rawOf('orig');
    delete raw._vision_tower_note;
    expect(parseConfig(raw, 'x').vision_config).toEqual(SIGLIP_SO400M);
    raw.vision_config = { ...hfRaw.vision_config, num_hidden_layers: 3 };
    expect(parseConfig(raw, 'x').vision_config.num_hidden_layers).toBe(3);
  });

  it('rejects bad configs with errors that say what is wrong', () => {
    const bad = (edit: (r: any) => void, msg: RegExp) => {
      const r = rawOf('hf');
      edit(r);
      expect(() => parseConfig(r, 'cfg')).toThrow(ConfigError);
      expect(() => parseConfig(r, 'cfg')).toThrow(msg);
    };
    bad((r) => (r.model_type = 'llama'), /model_type "llama" is not Phi-4-multimodal/);
    bad((r) => delete r.hidden_size, /"hidden_size" must be a number/);
    bad((r) => (r.num_attention_heads = 3), /not a multiple of num_attention_heads 3/);
    bad((r) => (r.num_key_value_heads = 3), /num_attention_heads 2 is not a multiple of num_key_value_heads 3/);
    bad((r) => r.rope_scaling.long_factor.pop(), /rotary_dim\/2 = 6/);
    bad((r) => (r.rope_scaling.type = 'yarn'), /"yarn" is not supported/);
    bad((r) => (r.num_hidden_layers = 1.5), /positive integer/);
    bad((r) => delete r.audio_config, /needs "vision_config" and "audio_config"/);
    const o = rawOf('orig');
    delete o.audio_processor;
    expect(() => parseConfig(o, 'cfg')).toThrow(/needs "audio_processor.config"/);
    expect(() => loadConfig(join(modelDir('hf'), 'vision-lora'))).toThrow(/no config.json/);
  });
});
