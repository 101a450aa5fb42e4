// Lazy loading of the encoders and LoRA adapters (api/load.ts lazyMedia, nn/lazy_weights.ts): text-only use
// reads none of their tensors, the first request of each modality reads exactly its parts (once), outputs are
// bit-identical to an eager load, and a bad encoder/adapter tensor is still reported when the model loads.
import { describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, readFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GOLDEN_DIR, golden, goldenPath } from '../helpers/golden.js';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';
import { Phi4MMForCausalLM } from '../../src/models/phi4mm/model.js';
import { openCheckpoint, type CheckpointProvider } from '../../src/models/phi4mm/checkpoint.js';
import { StrictWeights, WeightLoadError, type TensorProvider } from '../../src/nn/weights.js';
import { LazyWeights } from '../../src/nn/lazy_weights.js';
import { loadWeights } from '../../src/api/load.js';
import { createBackend } from '../../src/tensor/backend.js';
import { SafetensorsCheckpoint, writeSafetensors, type StWriteTensor } from '../../src/io/safetensors.js';
import { decodeImage } from '../../src/io/image.js';
import { decodeAudio } from '../../src/io/audio.js';
import { processImages } from '../../src/models/phi4mm/image_processor.js';
import { extractAudioFeatures } from '../../src/models/phi4mm/audio_processor.js';
import { Phi4MM, Messages } from '../../src/index.js';

const be = await createBackend('auto');
const ORIG = join(GOLDEN_DIR, 'model_orig');
const eager = Phi4MMForCausalLM.load(ORIG).model;
const img = (f: string) => decodeImage(new Uint8Array(readFileSync(goldenPath('inputs', f))));
const wav = await decodeAudio(new Uint8Array(readFileSync(goldenPath('inputs', 'audio_16k_3.3s.wav'))));
const ids = (k: string) => Int32Array.from(golden('e_multimodal').tensor(`${k}.input_ids`).data);

const isImage = (n: string) => n.startsWith('model.embed_tokens_extend.image_embed.');
const isAudio = (n: string) => n.startsWith('model.embed_tokens_extend.audio_embed.');
const isLora = (adapter: string) => (n: string) => n.includes('.lora_') && n.endsWith(`.${adapter}.weight`);

/** The provider with every tensor read logged by name. */
function counting(p: CheckpointProvider, reads: string[]): TensorProvider & { close(): void } {
  return {
    where: p.where, names: () => p.names(), info: (n) => p.info(n), quantInfo: (n) => p.quantInfo(n), close: () => p.close(),
    readF32: (n) => { reads.push(n); return p.readF32(n); },
    readRaw: (n) => { reads.push(n); return p.readRaw(n); },
  };
}

/** A lazily built model over `dir` whose reads (at load and on first use) land in `reads`. */
function lazyModel(dir: string, reads: string[]): Phi4MMForCausalLM {
  const { config, provider } = openCheckpoint(dir);
  try {
    const strict = new StrictWeights(counting(provider, reads));
    const model = new Phi4MMForCausalLM(new LazyWeights(strict, { reopen: () => counting(openCheckpoint(dir).provider, reads) }), config);
    strict.finish();
    return model;
  } finally {
    provider.close();
  }
}

/** Every tensor an eager load reads (the model ignores a few: SigLIP's layers past its feature layer, its head). */
function eagerReads(dir: string): string[] {
  const reads: string[] = [];
  const { config, provider } = openCheckpoint(dir);
  const ws = new StrictWeights(counting(provider, reads));
  new Phi4MMForCausalLM(ws, config); // eslint-disable-line no-new
  ws.finish();
  provider.close();
  return reads;
}

describe('lazy media parts on the golden tiny checkpoint', () => {
  const reads: string[] = [];
  const lazy = lazyModel(ORIG, reads);
  const all = eagerReads(ORIG);
  const count = (pred: (n: string) => boolean) => reads.filter(pred).length;

  it('text only reads no encoder or adapter tensor, and gives the eager logits bit for bit', () => {
    expect(count((n) => isImage(n) || isAudio(n) || n.includes('.lora_'))).toBe(0);
    expect(reads.length).toBe(all.filter((n) => !isImage(n) && !isAudio(n) && !n.includes('.lora_')).length);
    const x = Int32Array.from([200022, 3575, 553, 261, 200020, 200021, 12194, 200020, 200019]);
    expect(Array.from(lazy.forward(be, x).logits)).toEqual(Array.from(eager.forward(be, x).logits));
    expect(count((n) => isImage(n) || isAudio(n) || n.includes('.lora_'))).toBe(0);
    expect(lazy.loadedParts()).toEqual({ image_embed: false, audio_embed: false, vision_lora: false, speech_lora: false });
  });

  it('the first image reads the image encoder, its forward the vision LoRA; nothing of audio or speech', () => {
    const pi = processImages([img('image_B_300x620_rgba.png')]);
    const a = lazy.embedInputs(be, ids('image_only'), pi, null);
    expect(lazy.loadedParts()).toEqual({ image_embed: true, audio_embed: false, vision_lora: false, speech_lora: false });
    expect(count(isImage)).toBe(all.filter(isImage).length);
    const b = eager.embedInputs(be, ids('image_only'), pi, null);
    expect(Array.from(a.embeds)).toEqual(Array.from(b.embeds));
    const la = lazy.forward(be, a.ids, { mode: a.mode, inputsEmbeds: a.embeds }).logits;
    expect(lazy.loadedParts()).toEqual({ image_embed: true, audio_embed: false, vision_lora: true, speech_lora: false });
    expect(count(isLora('vision'))).toBe(all.filter(isLora('vision')).length);
    expect(count(isAudio) + count(isLora('speech'))).toBe(0);
    expect(Array.from(la)).toEqual(Array.from(eager.forward(be, b.ids, { mode: b.mode, inputsEmbeds: b.embeds }).logits));
  });

  it('audio reads the audio encoder and the speech LoRA; every tensor has then been read exactly once', () => {
    for (const name of ['audio_only', 'image_audio'] as const) {
      const pi = name === 'image_audio' ? processImages([img('image_A_320x240.png')]) : null, af = extractAudioFeatures([wav]);
      const a = lazy.embedInputs(be, ids(name), pi, af), b = eager.embedInputs(be, ids(name), pi, af);
      expect(Array.from(a.embeds)).toEqual(Array.from(b.embeds));
      const la = lazy.forward(be, a.ids, { mode: a.mode, inputsEmbeds: a.embeds }).logits;
      expect(Array.from(la)).toEqual(Array.from(eager.forward(be, b.ids, { mode: b.mode, inputsEmbeds: b.embeds }).logits));
    }
    expect(lazy.loadedParts()).toEqual({ image_embed: true, audio_embed: true, vision_lora: true, speech_lora: true });
    expect(new Set(reads).size).toBe(reads.length);
    expect([...reads].sort()).toEqual([...all].sort());
  });
});

/** A copy of the tiny checkpoint folder with tensors dropped or replaced (raw bytes, header rewritten). */
function alteredCheckpoint(edit: (t: StWriteTensor) => StWriteTensor | null, src = ORIG, metadata?: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'phi4mm-lazy-'));
  copyFileSync(join(src, 'config.json'), join(dir, 'config.json'));
  const ck = SafetensorsCheckpoint.open(src);
  const out = ck.names().flatMap((name) => {
    const i = ck.info(name), t = edit({ name, dtype: i.dtype, shape: i.shape, data: ck.readRaw(name) });
    return t ? [t] : [];
  });
  ck.close();
  writeSafetensors(join(dir, 'model.safetensors'), out, metadata);
  return dir;
}

describe('the transformers layout (adapters in their own files)', () => {
  it('loads lazily and reads the speech adapter from speech-lora/ on first use: same logits as the eager original layout', () => {
    const m = loadWeights(join(GOLDEN_DIR, 'model_hf'), {}, be).model;
    const x = Int32Array.from([200022, 3575, 553, 261, 200020, 200021, 12194, 200020, 200019]);
    expect(m.loadedParts().speech_lora).toBe(false);
    const a = m.forward(be, x, { mode: 'speech' }).logits;
    expect(m.loadedParts()).toEqual({ image_embed: false, audio_embed: false, vision_lora: false, speech_lora: true });
    expect(Array.from(a)).toEqual(Array.from(eager.forward(be, x, { mode: 'speech' }).logits));
  });
});

describe('lazy loading still validates the deferred parts at load', () => {
  it('a missing encoder tensor and mis-shaped encoder and adapter tensors are reported together by the load', () => {
    const gone = 'model.embed_tokens_extend.image_embed.img_processor.encoder.layers.0.mlp.fc1.weight';
    const bent = 'model.embed_tokens_extend.audio_embed.encoder.encoders.1.self_attn.linear_q.bias';
    const lora = 'model.layers.1.mlp.down_proj.lora_B.speech.weight';
    const dir = alteredCheckpoint((t) => {
      if (t.name === gone) return null;
      if (t.name === bent || t.name === lora) return { ...t, shape: [1, (t.data as Uint8Array).length / 2], dtype: 'BF16' };
      return t;
    });
    let err: unknown;
    try { loadWeights(dir, {}, be); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(WeightLoadError);
    const e = err as WeightLoadError;
    expect(e.missing).toEqual([expect.stringMatching(new RegExp(`^${gone.replace(/\./g, '\\.')} \\[`))]);
    expect(e.misshaped.map((m) => m.split(':')[0]).sort()).toEqual([bent, lora].sort());
    expect(e.unused).toEqual([]);
  });

  it('a pre-quantized encoder tensor whose stored bytes are short is reported at load, not on first use', async () => {
    // Saved with Q8_0 encoders: on the tiny model the policy quantizes the SigLIP position embedding [1024, 32].
    const q = loadWeights(ORIG, { isq: 'q8_0', quantizeEncoders: true, lazyMedia: false }, be);
    const name = 'model.embed_tokens_extend.image_embed.img_processor.embeddings.position_embedding.weight';
    expect(q.tensors.get(name)!.dtype).toBe('q8_0');
    const saved = mkdtempSync(join(tmpdir(), 'phi4mm-lazy-q-'));
    const { saveQuantizedCheckpoint } = await import('../../src/api/save.js');
    saveQuantizedCheckpoint(ORIG, join(saved, 'm'), q.model.config, q.tensors, 'q8_0');
    const meta = SafetensorsCheckpoint.open(join(saved, 'm')).metadataOf(name);
    const dir = alteredCheckpoint((t) => (t.name === name ? { ...t, shape: [t.shape[0]! - 34], data: (t.data as Uint8Array).subarray(34) } : t), join(saved, 'm'), meta);
    expect(() => loadWeights(dir, {}, be)).toThrow(/position_embedding\.weight: q8_0 \[1024,32\] takes 34816 bytes, the checkpoint stores U8\[34782\]/);
  });
});

describe('lazy reads open the folder again', () => {
  it('a folder whose files changed after the load is refused on first use with a clear error; text keeps working', () => {
    const dir = alteredCheckpoint((t) => t);
    const f = join(dir, 'model.safetensors'), when = 1_700_000_000; // whole seconds: restored exactly below
    utimesSync(f, when, when);
    const m = loadWeights(dir, {}, be).model;
    utimesSync(f, when, when + 5);
    const pi = processImages([img('image_B_300x620_rgba.png')]);
    expect(() => m.embedInputs(be, ids('image_only'), pi, null)).toThrow(/reading the image encoder on first use failed .*changed since the model was loaded/);
    expect(m.loadedParts().image_embed).toBe(false);
    expect(m.forward(be, Int32Array.from([200022, 3575, 553])).logits.length).toBe(m.config.text.vocab_size);
    utimesSync(f, when, when); // back as it was: the next request reads it (failures are not cached)
    expect(Array.from(m.embedInputs(be, ids('image_only'), pi, null).embeds)).toEqual(Array.from(eager.embedInputs(be, ids('image_only'), pi, null).embeds));
  });
});

describe('through the engine', () => {
  const dir = tinyCheckpoint();
  const msgs = {
    text: new Messages().addMessage('user', 'Hello there'),
    image: new Messages().addMultimodalMessage('user', 'What is this?', { images: [goldenPath('inputs', 'image_A_320x240.png')] }),
    audio: new Messages().addMultimodalMessage('user', 'Transcribe.', { audios: [goldenPath('inputs', 'audio_16k_3.3s.wav')] }),
  };

  it('inline host: text loads nothing more, an image its encoder and the vision LoRA; same text as an eager load', async () => {
    const lazy = await Phi4MM.fromPretrained(dir, { engine: { host: 'inline' } });
    const eagerM = await Phi4MM.fromPretrained(dir, { lazyMedia: false, engine: { host: 'inline' } });
    expect(eagerM.model.loadedParts()).toEqual({ image_embed: true, audio_embed: true, vision_lora: true, speech_lora: true });
    expect(lazy.describe()).toMatch(/encoders and LoRA adapters read on first use: 0\.00 GiB on disk \(\d+ tensors\)/);
    // The load line names the kernel variant in use, which sets the speed to expect.
    const isa = lazy.backend.isa;
    expect(lazy.describe()).toContain(isa ? `native backend (${isa} kernels), ` : 'reference backend, ');
    expect(lazy.loadReport.deferred.tensors).toBeGreaterThan(100);
    expect(eagerM.loadReport.deferred).toEqual({ tensors: 0, bytes: 0 });
    const t = await lazy.chat(msgs.text, { maxTokens: 6 });
    expect(lazy.model.loadedParts()).toEqual({ image_embed: false, audio_embed: false, vision_lora: false, speech_lora: false });
    expect(t.text).toBe((await eagerM.chat(msgs.text, { maxTokens: 6 })).text);
    const i = await lazy.chat(msgs.image, { maxTokens: 6 });
    expect(lazy.model.loadedParts()).toEqual({ image_embed: true, audio_embed: false, vision_lora: true, speech_lora: false });
    expect(i.text).toBe((await eagerM.chat(msgs.image, { maxTokens: 6 })).text);
    await lazy.close();
    await eagerM.close();
  });

  it('worker host (the default): lazy and eager loads generate the same text for text, image and audio', async () => {
    // One engine at a time: two worker engines computing at once in one process is not safe today (the native
    // addon's shared state; seen on main too: different greedy text, or a hang).
    // The worker builds the load line the CLI and server print; it names the kernel variant as the inline host's does.
    const isa = (await createBackend('auto')).isa;
    const run = async (lazyMedia: boolean) => {
      const m = await Phi4MM.fromPretrained(dir, { lazyMedia });
      expect(m.describe()).toContain(isa ? `native backend (${isa} kernels), ` : 'reference backend, ');
      const out: string[] = [];
      for (const x of [msgs.text, msgs.image, msgs.audio]) out.push((await m.chat(x, { maxTokens: 6 })).text);
      await m.close();
      return out;
    };
    const lazy = await run(true);
    expect(lazy.every((t) => t.length > 0)).toBe(true);
    expect(lazy).toEqual(await run(false));
  });
});

describe('options', () => {
  it('lazyMedia and the quantize flags are booleans; the CLI maps --eager-media, --quantize-encoders, --quantize-adapters', async () => {
    const { validateLoadOptions } = await import('../../src/api/load.js');
    expect(() => validateLoadOptions({ lazyMedia: 'no' as never })).toThrow(/lazyMedia must be true or false \(got "no"\)/);
    expect(() => validateLoadOptions({ quantizeAdapters: 1 as never })).toThrow(/quantizeAdapters must be true or false/);
    const { loadOptions } = await import('../../src/cli/main.js');
    const o = loadOptions({ 'eager-media': true, 'quantize-encoders': true, 'quantize-adapters': true });
    expect([o.lazyMedia, o.quantizeEncoders, o.quantizeAdapters]).toEqual([false, true, true]);
    expect(loadOptions({}).lazyMedia).toBeUndefined(); // lazy unless asked
  });
});
