// The name table against every entry of the golden name_mapping.json.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { goldenPath } from '../helpers/golden.js';
import { HF_TO_ORIG_RULES, adapterKeyToOrig, hfToOrig } from '../../src/models/phi4mm/mapping.js';

const nm = JSON.parse(readFileSync(goldenPath('name_mapping.json'), 'utf8')) as {
  hf_to_orig: Record<string, string>;
  orig_lora_keys_not_in_hf_base: string[];
  hf_adapter_file_keys: Record<'vision' | 'speech', string[]>;
};

describe('transformers → original name table', () => {
  it('maps every base tensor name of name_mapping.json', () => {
    const entries = Object.entries(nm.hf_to_orig);
    expect(entries.length).toBeGreaterThan(100);
    const wrong = entries.filter(([hf, orig]) => hfToOrig(hf) !== orig).map(([hf, orig]) => `${hf} → ${hfToOrig(hf)} (want ${orig})`);
    expect(wrong).toEqual([]);
  });

  it('every rule is used by some real tensor (no dead rules)', () => {
    const names = Object.keys(nm.hf_to_orig);
    const unused = HF_TO_ORIG_RULES.filter(([re]) => !names.some((n) => re.test(n))).map(([re]) => re.source);
    expect(unused).toEqual([]);
  });

  it('adapter-file keys map onto exactly the original LoRA names', () => {
    const mapped = (['vision', 'speech'] as const).flatMap((a) => nm.hf_adapter_file_keys[a].map((k) => adapterKeyToOrig(k, a)));
    expect(new Set(mapped).size).toBe(mapped.length);
    expect([...mapped].sort()).toEqual([...nm.orig_lora_keys_not_in_hf_base].sort());
    expect(adapterKeyToOrig('base_model.model.model.layers.3.mlp.down_proj.lora_B.weight', 'speech')).toBe('model.layers.3.mlp.down_proj.lora_B.speech.weight');
  });

  it('rejects an unexpected adapter key with a clear message', () => {
    expect(() => adapterKeyToOrig('model.layers.0.mlp.down_proj.lora_embedding_A', 'vision')).toThrow(/unexpected key .* vision-lora\/adapter_model.safetensors/);
  });
});
