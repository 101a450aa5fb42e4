// Both checkpoint layouts presented under the original names; strict loading reports everything at once.
import { describe, expect, it } from 'vitest';
import { CheckpointProvider, openCheckpoint } from '../../src/models/phi4mm/checkpoint.js';
import { SafetensorsCheckpoint } from '../../src/io/safetensors.js';
import { StrictWeights, WeightLoadError, memoryProvider } from '../../src/nn/weights.js';
import { Phi4MiniDecoder } from '../../src/models/phi4mm/decoder.js';
import { isEncoderTensor, modelDir } from './load.js';

describe('CheckpointProvider', () => {
  const o = openCheckpoint(modelDir('orig')), h = openCheckpoint(modelDir('hf'));

  it('the transformers layout (base file + adapter folders) yields exactly the original names, shapes and values', () => {
    const on = o.provider.names().sort(), hn = h.provider.names().sort();
    expect(hn).toEqual(on);
    // The original file holds the LoRA tensors in-model; in the HF layout they come from the adapter folders.
    expect(on.filter((n) => n.includes('.lora_A.vision.')).length).toBeGreaterThan(0);
    for (const n of on) {
      expect(h.provider.info(n).shape, n).toEqual(o.provider.info(n).shape);
    }
    for (const n of ['model.layers.1.self_attn.qkv_proj.base_layer.weight', 'model.layers.0.mlp.down_proj.lora_B.speech.weight', 'model.embed_tokens_extend.image_embed.glb_GN']) {
      expect(Array.from(h.provider.readF32(n)), n).toEqual(Array.from(o.provider.readF32(n)));
    }
  });

  it('the original layout is the safetensors file as is', () => {
    const ck = SafetensorsCheckpoint.open(modelDir('orig'));
    expect(o.provider.names().sort()).toEqual(ck.names().sort());
    ck.close();
  });

  for (const layout of ['orig', 'hf'] as const) {
    it(`${layout}: the decoder consumes every tensor outside the encoders (strict finish)`, () => {
      const { config, provider } = layout === 'orig' ? o : h;
      const ws = new StrictWeights(provider);
      ws.ignore(isEncoderTensor);
      new Phi4MiniDecoder(ws, config.text, { vision: config.vision_lora, speech: config.speech_lora });
      const report = ws.finish();
      expect(report.counts['f32']).toBeGreaterThan(0);
    });
  }

  it('a decoder without LoRA configs leaves the adapter tensors unused, and finish() lists them all', () => {
    const ws = new StrictWeights(o.provider);
    ws.ignore(isEncoderTensor);
    new Phi4MiniDecoder(ws, o.config.text, {});
    const err = (() => { try { ws.finish(); } catch (e) { return e; } })() as WeightLoadError;
    expect(err).toBeInstanceOf(WeightLoadError);
    expect(err.unused.length).toBe(o.provider.names().filter((n) => n.includes('.lora_')).length);
    expect(err.missing).toEqual([]);
  });

  it('missing and mis-shaped tensors are reported together', () => {
    const t = o.config.text;
    const ws = new StrictWeights(memoryProvider({
      'model.norm.weight': { shape: [t.hidden_size + 1], data: new Float32Array(t.hidden_size + 1) },
      'lm_head.weight': { shape: [1], data: new Float32Array(1) },
    }));
    new Phi4MiniDecoder(ws, t, { vision: o.config.vision_lora });
    const err = (() => { try { ws.finish(); } catch (e) { return e; } })() as WeightLoadError;
    expect(err).toBeInstanceOf(WeightLoadError);
    const missing = err.missing.map((m) => m.split(' ')[0]);
    expect(missing).toContain('model.embed_tokens.weight');
    expect(missing).toContain(`model.layers.${t.num_hidden_layers - 1}.mlp.down_proj.lora_B.vision.weight`);
    expect(missing.some((n) => n!.includes('.speech.'))).toBe(false);
    expect(err.misshaped.join()).toMatch(/model\.norm\.weight/);
    expect(err.unused).toEqual(['lm_head.weight']); // tied embeddings: the model does not read an lm_head
  });
});
