// The whole model against the golden fixtures: multimodal forwards (image/audio from the input files through
// our own processors and encoders), greedy generation, LongRoPE at 4096 tokens, strict loading of both layouts.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { golden, GOLDEN_DIR, goldenPath, expectClose } from '../helpers/golden.js';
import { Phi4MMForCausalLM } from '../../src/models/phi4mm/model.js';
import { createBackend } from '../../src/tensor/backend.js';
import { decodeImage } from '../../src/io/image.js';
import { decodeAudio } from '../../src/io/audio.js';
import { processImages } from '../../src/models/phi4mm/image_processor.js';
import { extractAudioFeatures } from '../../src/models/phi4mm/audio_processor.js';
import { argmax } from '../../src/text/sampling.js';
import { WeightLoadError } from '../../src/nn/weights.js';

const be = await createBackend('auto');
const { model } = Phi4MMForCausalLM.load(join(GOLDEN_DIR, 'model_orig'));
const img = (f: string) => decodeImage(new Uint8Array(readFileSync(goldenPath('inputs', f))));
const wav = async () => decodeAudio(new Uint8Array(readFileSync(goldenPath('inputs', 'audio_16k_3.3s.wav'))));
const ids = (k: string) => Int32Array.from(golden('e_multimodal').tensor(`${k}.input_ids`).data);

describe('Phi4MMForCausalLM loading', () => {
  it('consumes every tensor of both layouts (strict) and both give identical embeddings and logits', () => {
    const { model: hf, report } = Phi4MMForCausalLM.load(join(GOLDEN_DIR, 'model_hf'));
    expect(report.counts['f32']).toBeGreaterThan(100);
    const x = Int32Array.from([200022, 3575, 553, 261, 200020, 200021, 12194, 200020, 200019]);
    const a = model.forward(be, x, { mode: 'speech' }).logits, b = hf.forward(be, x, { mode: 'speech' }).logits;
    expect(Array.from(b)).toEqual(Array.from(a));
  });

  it('reports every missing and unexpected tensor at once', async () => {
    const { memoryProvider, StrictWeights } = await import('../../src/nn/weights.js');
    const ws = new StrictWeights(memoryProvider({ 'model.norm.weight': { shape: [32], data: new Float32Array(32) }, 'stray.tensor': { shape: [1], data: new Float32Array(1) } }));
    // eslint-disable-next-line no-new
    new Phi4MMForCausalLM(ws, model.config);
    let err: unknown;
    try { ws.finish(); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(WeightLoadError);
    const e = err as WeightLoadError;
    // Every missing entry is a real checkpoint tensor; the one provided is not reported; LoRA tensors are
    // required because the config declares the adapters.
    const real = new Set((await import('../../src/io/safetensors.js')).SafetensorsCheckpoint.open(join(GOLDEN_DIR, 'model_orig')).names());
    const names = e.missing.map((m) => m.split(' ')[0]!);
    expect(names.every((n) => real.has(n))).toBe(true);
    expect(names).not.toContain('model.norm.weight');
    expect(names).toContain('model.layers.1.mlp.down_proj.lora_B.speech.weight');
    expect(names.length).toBeGreaterThan(150);
    expect(e.unused).toEqual(['stray.tensor']);
    expect(e.message).toMatch(/missing:[\s\S]*model\.embed_tokens\.weight/);
  });
});

describe('multimodal forwards (golden e_multimodal), inputs from the image/audio files', () => {
  // Prompts of 48–1154 tokens: the reference's own f32 error is up to 8.2e-4 on hidden states and 3.6e-4 on
  // logits, most of it from its float32 RoPE tables, which we reproduce (README §10); 2e-3 absolute covers it.
  const TOL = { atol: 2e-3, rtol: 1e-3 };
  const cases = {
    image_audio: async () => ({ images: [img('image_A_320x240.png')], audios: [await wav()] }),
    image_only: async () => ({ images: [img('image_B_300x620_rgba.png')], audios: [] }),
    two_images: async () => ({ images: [img('image_A_320x240.png'), img('image_C_700x260.decoded.png')], audios: [] }),
    audio_only: async () => ({ images: [], audios: [await wav()] }),
  } as const;
  for (const [name, make] of Object.entries(cases)) {
    it(name, async () => {
      const { images, audios } = await make();
      const g = golden('e_multimodal');
      const pi = images.length ? processImages(images) : null;
      const af = audios.length ? extractAudioFeatures(audios) : null;
      const emb = model.embedInputs(be, ids(name), pi, af);
      expect(emb.mode).toBe(name === 'image_audio' ? 'vision_speech' : name === 'audio_only' ? 'speech' : 'vision');
      expectClose(emb.embeds, g.tensor(`${name}.inputs_embeds`).data, { atol: 1e-4, rtol: 1e-4 }, `${name} inputs_embeds`);
      const r = model.forward(be, emb.ids, { mode: emb.mode, inputsEmbeds: emb.embeds });
      expectClose(r.lastHiddenState, g.tensor(`${name}.last_hidden_state`).data, TOL, `${name} last_hidden_state`);
      expectClose(r.logits, g.tensor(`${name}.logits_last`).data, TOL, `${name} logits_last`);
      expect(argmax(r.logits)).toBe(g.json[name].top2_last.top1_id);
    });
  }
});

describe('generation (golden f_generation)', () => {
  const greedy = (l: Float32Array) => argmax(l);
  it('text prompt: the same 12 greedy ids (no LoRA)', async () => {
    const g = golden('f_generation');
    const out: number[] = [];
    for await (const id of model.generate(be, Int32Array.from(g.tensor('text.prompt_ids').data), { mode: 'language', maxNewTokens: 12, sample: greedy })) out.push(id);
    expect(out).toEqual(Array.from(g.tensor('text.generated_ids').data));
  });

  it('image + audio prompt: the same 12 greedy ids (vision LoRA, vision audio projection)', async () => {
    const g = golden('f_generation');
    const emb = model.embedInputs(be, Int32Array.from(g.tensor('image_audio.prompt_ids').data), processImages([img('image_A_320x240.png')]), extractAudioFeatures([await wav()]));
    const out: number[] = [];
    for await (const id of model.generate(be, emb.ids, { mode: emb.mode, inputsEmbeds: emb.embeds, maxNewTokens: 12, sample: greedy })) out.push(id);
    expect(out).toEqual(Array.from(g.tensor('image_audio.generated_ids').data));
  });
});

describe('LongRoPE at 4096 tokens (golden g_long_rope)', () => {
  const g = golden('g_long_rope');
  const all = Int32Array.from(g.tensor('input_ids_4100').data);
  // 4 k tokens: the reference's f32 error reaches 5e-3 on hidden states and 3e-3 on logits (README §10), mostly
  // from its f32 RoPE tables, which we reproduce; 1e-2 absolute bounds the rest.
  const TOL = { atol: 1e-2, rtol: 1e-2 };
  it('4096 tokens use the short factors; 4100 tokens use the long factors for every position', () => {
    for (const [n, key] of [[4096, 'len4096'], [4100, 'len4100']] as const) {
      const r = model.forward(be, all.subarray(0, n));
      expectClose(r.lastHiddenState, g.tensor(`${key}.last_hidden_state`).data, TOL, `${key} hidden`);
      expectClose(r.logits, g.tensor(`${key}.logits_last`).data, TOL, `${key} logits`);
      expect(argmax(r.logits)).toBe(g.json[key].top2_last.top1_id);
    }
  });

  it('the long table matches the reference at the listed positions', () => {
    const pos = Array.from(g.tensor('rope_long.positions').data);
    const cos = g.tensor('rope_long.cos').data, sin = g.tensor('rope_long.sin').data;
    const d = model.lm.rope.rotaryDim;
    pos.forEach((p, i) => {
      const t = model.lm.rope.tables(p, 1, true);
      expectClose(t.cos, cos.subarray(i * d, (i + 1) * d), { atol: 2e-6 }, `cos@${p}`);
      expectClose(t.sin, sin.subarray(i * d, (i + 1) * d), { atol: 2e-6 }, `sin@${p}`);
    });
  });

  it('a prompt under 4096 that generates past it: each step equals a fresh forward with the prescribed factors', async () => {
    const prompt = all.subarray(0, 4093);
    const seen: Float32Array[] = [];
    const steps: number[] = [];
    for await (const id of model.generate(be, prompt, { mode: 'language', maxNewTokens: 6, sample: (l) => { seen.push(l.slice()); return argmax(l); } })) steps.push(id);
    expect(steps.length).toBe(6);
    // Step k's logits come from the sequence prompt + steps[0..k-1]; lengths 4093..4098 cross 4096 at k = 4.
    for (const k of [2, 3, 4, 5]) {
      const seq = new Int32Array(prompt.length + k);
      seq.set(prompt);
      seq.set(steps.slice(0, k), prompt.length);
      const fresh = model.forward(be, seq).logits;
      // Same tokens, same factors; only the cache grouping differs (f32 rounding).
      expectClose(seen[k]!, fresh, { atol: 2e-4, rtol: 2e-4 }, `step ${k} (length ${seq.length})`);
    }
  });
});
