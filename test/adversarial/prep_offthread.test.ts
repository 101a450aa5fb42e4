// Prompt preparation off the main thread (src/engine/prep_pool.ts) gives exactly what the in-thread function
// gives: the same token ids, crop pixels, masks, audio features and media keys, bit for bit. Errors keep their
// class, and a closed pool refuses work instead of hanging.
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { preparePromptInputs, prepIsSmall, promptIds, textIsSmall, INLINE_PREP_CHARS, type PrepInput, type Prepared } from '../../src/engine/prep.js';
import { PrepPool, type PrepOut } from '../../src/engine/prep_pool.js';
import { Phi4Tokenizer } from '../../src/text/tokenizer.js';
import { decodeImage } from '../../src/io/image.js';
import { decodeAudio } from '../../src/io/audio.js';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';
import { ROOT } from '../helpers/golden.js';
import { rng } from './craft.js';

const dir = tinyCheckpoint();
const imageCfg = { dynamicHd: 36 };
const tok = Phi4Tokenizer.fromDir(dir);
const pool = new PrepPool({ dir, imageCfg });
afterAll(() => pool.close());

/** Noise pixels: every crop differs, so a misplaced or rounded value shows. */
function noiseImage(width: number, height: number, seed: number) {
  const r = rng(seed), data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(r() * 256);
  return { width, height, data };
}

/** A deep copy, so the worker's input is independent of the inline run's (transfers detach). */
const clone = (i: PrepInput): PrepInput => ({ ...i, images: i.images.map((m) => ({ ...m, data: m.data.slice() })), audios: i.audios.map((a) => ({ ...a, samples: a.samples.slice() })) });

const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function expectSame(a: Prepared, b: PrepOut): void {
  expect(b.ids).toEqual(a.ids);
  expect([b.imageTokens, b.audioTokens]).toEqual([a.imageTokens, a.audioTokens]);
  expect(b.media.map((g) => [g.kind, g.key, g.items])).toEqual(a.media.map((g) => [g.kind, g.key, g.items]));
  for (const [i, g] of a.media.entries()) {
    const h = b.media[i]!;
    if (g.image) {
      // Byte comparison: equal bits, not merely equal numbers (-0 vs 0, NaN payloads).
      expect(bytes(h.image!.pixelValues).equals(bytes(g.image.pixelValues))).toBe(true);
      expect(bytes(h.image!.attentionMask).equals(bytes(g.image.attentionMask))).toBe(true);
      expect(h.image!.imageSizes).toEqual(g.image.imageSizes);
      expect(h.image!.numImgTokens).toEqual(g.image.numImgTokens);
    }
    if (g.audio) {
      expect(bytes(h.audio!.features).equals(bytes(g.audio.features))).toBe(true);
      expect(h.audio!.frames).toEqual(g.audio.frames);
    }
  }
}

describe('prompt preparation in the worker', () => {
  it('a long prompt without spaces: the same ids as in-thread tokenizing', async () => {
    const input: PrepInput = { promptText: `<|user|>${'a'.repeat(120_000)}ö€😀<|end|><|assistant|>`, images: [], audios: [], mode: 'language' };
    expect(prepIsSmall(input)).toBe(false);
    const here = preparePromptInputs(tok, imageCfg, input);
    const there = await pool.prepare(input);
    expect(there.ids!.length).toBeGreaterThan(15_000);
    expectSame(here, there);
  });

  it('images (fixture and 1500×1100 noise) and audio: the same ids, crop pixels, masks, features and media keys', async () => {
    const png = decodeImage(readFileSync(join(ROOT, 'test/fixtures/image/gradient.png')));
    const wav = await decodeAudio(readFileSync(join(ROOT, 'test/fixtures/audio/tone440_44k1.flac')));
    const input: PrepInput = {
      promptText: '<|user|><|image_1|><|image_2|><|audio_1|>What do you see and hear?<|end|><|assistant|>',
      images: [png, noiseImage(1500, 1100, 7)], audios: [wav], mode: 'vision_speech',
    };
    const here = preparePromptInputs(tok, imageCfg, clone(input));
    const copy = clone(input);
    const there = await pool.prepare(copy, [copy.images[1]!.data.buffer as ArrayBuffer]);
    expect(copy.images[1]!.data.length).toBe(0); // moved, not copied
    expect(here.media.map((g) => g.kind)).toEqual(['image', 'audio']);
    expect(here.media[0]!.image!.numImgTokens.length).toBe(2);
    expectSame(here, there);
    // Media only (a short prompt is tokenized by the caller): the same tensors, and the caller's ids match.
    const mediaOnly = await pool.prepare(clone(input), [], false);
    expect(mediaOnly.ids).toBeUndefined();
    expectSame(here, { ...mediaOnly, ids: promptIds(tok, input.promptText, mediaOnly) });
  });

  it('pixels over a SharedArrayBuffer are shared, not detached, and give the same tensors', async () => {
    const img = noiseImage(700, 500, 3);
    const shared = new Uint8Array(new SharedArrayBuffer(img.data.length));
    shared.set(img.data);
    const input: PrepInput = { promptText: '<|user|><|image_1|>Describe.<|end|><|assistant|>', images: [{ ...img, data: shared }], audios: [], mode: 'vision' };
    const there = await pool.prepare(input);
    expect(shared.length).toBe(img.data.length); // still usable here (n > 1 choices reuse it)
    expectSame(preparePromptInputs(tok, imageCfg, { ...input, images: [img] }), there);
  });

  it('errors keep their class and message; small text-only prompts are flagged for the calling thread', async () => {
    const mismatch: PrepInput = { promptText: '<|image_1|>', images: [], audios: [], mode: 'language' };
    let inThread: Error | null = null;
    try { preparePromptInputs(tok, imageCfg, mismatch); } catch (e) { inThread = e as Error; }
    const off = await pool.prepare(mismatch).catch((e: Error) => e);
    expect(inThread).toBeInstanceOf(Error);
    expect((off as Error).message).toBe(inThread!.message);
    expect((off as Error).name).toBe(inThread!.name);
    const bad: PrepInput = { promptText: 'x', images: [{ width: 2, height: 2, data: new Uint8Array(5) }], audios: [], mode: 'vision' };
    expect(((await pool.prepare(bad).catch((e: Error) => e)) as Error).message).toMatch(/expected 2×2×3 = 12 RGB bytes, got 5/);
    const notText = { promptText: 42 as unknown as string, images: [], audios: [], mode: 'language' as const };
    expect(() => preparePromptInputs(tok, imageCfg, notText)).toThrow(TypeError);
    await expect(pool.prepare(notText)).rejects.toBeInstanceOf(TypeError);
    expect(prepIsSmall({ promptText: 'a'.repeat(INLINE_PREP_CHARS), images: [], audios: [], mode: 'language' })).toBe(true);
    expect(prepIsSmall({ promptText: 'a'.repeat(INLINE_PREP_CHARS + 1), images: [], audios: [], mode: 'language' })).toBe(false);
    expect(prepIsSmall({ promptText: 'a', images: [{ width: 1, height: 1, data: new Uint8Array(3) }], audios: [], mode: 'vision' })).toBe(false);
    expect(textIsSmall({ promptText: 'a', images: [{ width: 1, height: 1, data: new Uint8Array(3) }], audios: [], mode: 'vision' })).toBe(true);
  });

  it('a closed pool refuses work at once', async () => {
    const p = new PrepPool({ dir, imageCfg });
    await p.prepare({ promptText: 'hello', images: [], audios: [], mode: 'language' });
    await p.close();
    await expect(p.prepare({ promptText: 'hello', images: [], audios: [], mode: 'language' })).rejects.toThrow(/closed/);
  });
});
