// The engine on the tiny golden model (DeviceBatchModel: the decoder's forwardBatch over a paged store):
// batched generation gives the golden / one-at-a-time greedy ids with mixed modes in one batch (text: no
// LoRA, image+audio: vision LoRA, audio: speech LoRA), across the LongRoPE switch at 4096 while the others
// stay short, and a prefix-cache hit gives the cold logits within the golden tolerance.
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
import type { KvDType } from '../../src/tensor/device.js';
import { Scheduler } from '../../src/engine/scheduler.js';
import { DeviceBatchModel } from '../../src/engine/device_model.js';
import { mediaGroups } from '../../src/engine/request.js';
import type { EngineEvent, EngineRequest, EngineSettings, InputMode } from '../../src/engine/types.js';

const be = await createBackend('auto');
const { model } = Phi4MMForCausalLM.load(join(GOLDEN_DIR, 'model_orig'));
const V = model.config.text.vocab_size;
const gen = golden('f_generation');
const img = decodeImage(new Uint8Array(readFileSync(goldenPath('inputs', 'image_A_320x240.png'))));
const wav = await decodeAudio(new Uint8Array(readFileSync(goldenPath('inputs', 'audio_16k_3.3s.wav'))));
const greedy = { params: { temperature: 0, vocabLimit: V } };
const settings: EngineSettings = { blockSize: 16, numBlocks: 1024, maxRunning: 8, maxWaiting: 8, prefillChunk: 256, mediaCacheBytes: 64 << 20 };

let nextId = 1;
function request(ids: Int32Array, mode: InputMode, withImage: boolean, withAudio: boolean, maxTokens: number): EngineRequest {
  const pi = withImage ? processImages([img]) : null, af = withAudio ? extractAudioFeatures([wav]) : null;
  return { id: nextId++, ids, mode, media: mediaGroups(pi, af, mode, {}), sampler: greedy, n: 1, maxTokens, stopIds: [] };
}

function engine(dtype: KvDType, s: Partial<EngineSettings> = {}) {
  const bm = new DeviceBatchModel(model, be, dtype);
  const events: EngineEvent[] = [];
  const sched = new Scheduler(bm, { ...settings, ...s }, (e) => events.push(e));
  const run = () => { while (sched.hasWork) if (!sched.step()) break; };
  const ids = (id: number) => events.filter((e) => e.type === 'token' && e.id === id).map((e) => (e as { token: number }).token);
  return { bm, sched, run, ids, events };
}

/** One sequence at a time through the research path (generateTokens: contiguous cache, no engine). */
async function oneAtATime(r: EngineRequest, withImage: boolean, withAudio: boolean): Promise<number[]> {
  const emb = model.embedInputs(be, r.ids, withImage ? processImages([img]) : null, withAudio ? extractAudioFeatures([wav]) : null);
  const out: number[] = [];
  for await (const id of model.generate(be, r.ids, { mode: emb.mode, inputsEmbeds: emb.embeds, maxNewTokens: r.maxTokens, sample: (l) => argmax(l) })) out.push(id);
  return out;
}

const textIds = Int32Array.from(gen.tensor('text.prompt_ids').data);
const iaIds = Int32Array.from(gen.tensor('image_audio.prompt_ids').data);
const audioIds = Int32Array.from(golden('e_multimodal').tensor('audio_only.input_ids').data);

describe('engine exactness (tiny golden model)', () => {
  it('text, image+audio and audio requests in one batch (chunked prefill): golden and one-at-a-time greedy ids, f32 KV', async () => {
    const e = engine('f32', { prefillChunk: 128 });
    const t = request(textIds, 'language', false, false, 12), ia = request(iaIds, 'vision_speech', true, true, 12), a = request(audioIds, 'speech', false, true, 12);
    [t, ia, a].forEach((r) => e.sched.submit(r));
    e.run();
    expect(e.ids(t.id)).toEqual(Array.from(gen.tensor('text.generated_ids').data));
    expect(e.ids(ia.id)).toEqual(Array.from(gen.tensor('image_audio.generated_ids').data));
    expect(e.ids(a.id)).toEqual(await oneAtATime(a, false, true));
  });

  it('the same with the default f16 KV store: batched == one at a time through the engine', () => {
    const run = (maxRunning: number) => {
      const e = engine('f16', { maxRunning, prefillChunk: 128 });
      const rs = [request(textIds, 'language', false, false, 12), request(iaIds, 'vision_speech', true, true, 12), request(audioIds, 'speech', false, true, 12)];
      rs.forEach((r) => e.sched.submit(r));
      e.run();
      return rs.map((r) => e.ids(r.id));
    };
    const batched = run(8), alone = run(1);
    expect(batched).toEqual(alone);
    // (Reported, not asserted: whether f16 KV still reproduces the f32 golden ids.)
    console.log(`f16 KV vs golden: text ${JSON.stringify(batched[0]) === JSON.stringify(Array.from(gen.tensor('text.generated_ids').data)) ? 'equal' : 'differs'}, image_audio ${JSON.stringify(batched[1]) === JSON.stringify(Array.from(gen.tensor('image_audio.generated_ids').data)) ? 'equal' : 'differs'}`);
  });

  it('one sequence crosses the LongRoPE switch at 4096 while a short one runs beside it', async () => {
    const e = engine('f32', { prefillChunk: 512 });
    const longIds = Int32Array.from({ length: 4090 }, (_, i) => 1000 + ((i * 7919) % 150000));
    const long = request(longIds, 'language', false, false, 12), short = request(textIds, 'language', false, false, 12);
    e.sched.submit(long);
    e.sched.submit(short);
    e.run();
    expect(e.ids(short.id)).toEqual(Array.from(gen.tensor('text.generated_ids').data));
    expect(e.ids(long.id)).toEqual(await oneAtATime(long, false, false));
  });

  it('a prefix-cache hit gives the cold logits (golden tolerance); the second turn prefills only the new tokens', () => {
    const e = engine('f32');
    const logits: Float32Array[] = [];
    const fb = e.bm.forwardBatch.bind(e.bm);
    e.bm.forwardBatch = (seqs) => { const l = fb(seqs); if (seqs.length === 1 && seqs[0]!.logits) logits.push(l.slice(0, V)); return l; };
    const first = request(iaIds, 'vision_speech', true, true, 1);
    e.sched.submit(first);
    e.run();
    const turn2 = Int32Array.from([...iaIds, ...e.ids(first.id), 200020, 200021, 3575, 553, 261, 200020, 200019]);
    const second = request(turn2, 'vision_speech', true, true, 1);
    e.sched.submit(second);
    e.run();
    const done = e.events.find((x) => x.type === 'done' && x.id === second.id) as Extract<EngineEvent, { type: 'done' }>;
    expect(done.done.cachedTokens).toBe(Math.floor(iaIds.length / 16) * 16); // every full block of turn 1's prompt
    // Cold: the whole second-turn prompt in one forward through the research path.
    const emb = model.embedInputs(be, turn2, processImages([img]), extractAudioFeatures([wav]));
    const cold = model.forward(be, turn2, { mode: emb.mode, inputsEmbeds: emb.embeds }).logits;
    // e_multimodal's tolerance (test/model): the reference's own f32 error on logits is up to 3.6e-4.
    expectClose(logits[1]!, cold, { atol: 2e-3, rtol: 1e-3 }, 'prefix-hit logits vs cold');
    expect(argmax(logits[1]!)).toBe(argmax(cold));
  });
});
