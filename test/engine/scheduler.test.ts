// The scheduler over a deterministic fake model (fake_model.ts): continuous batching gives the one-at-a-time
// ids, chunked prefill, the prefix cache (hits, second turn, shared system prompt), n > 1 forks, abort,
// admission (429), never-fits (400), waiting for room, preemption, the LongRoPE switch, the media cache.
import { describe, expect, it } from 'vitest';
import { Scheduler } from '../../src/engine/scheduler.js';
import { EngineError, type EngineEvent, type EngineRequest, type EngineSettings, type MediaGroup } from '../../src/engine/types.js';
import { FakeModel, referenceGreedy } from './fake_model.js';

const settings = (o: Partial<EngineSettings> = {}): EngineSettings => ({ blockSize: 4, numBlocks: 64, maxRunning: 8, maxWaiting: 8, prefillChunk: 16, mediaCacheBytes: 1 << 20, ...o });
const greedy = { params: { temperature: 0, vocabLimit: 64 } };
let nextId = 1;
const req = (ids: number[], o: Partial<EngineRequest> = {}): EngineRequest => ({ id: nextId++, ids: Int32Array.from(ids), mode: 'language', media: [], sampler: greedy, n: 1, maxTokens: 10, stopIds: [], ...o });
const prompt = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i * 13 + seed * 7) % 50 + 1);

function harness(model: FakeModel, s: EngineSettings) {
  const events: EngineEvent[] = [];
  const sched = new Scheduler(model, s, (e) => events.push(e));
  const run = (max = 10_000) => { for (let i = 0; i < max && sched.hasWork; i++) if (!sched.step()) break; };
  const ids = (id: number, index = 0) => events.filter((e) => e.type === 'token' && e.id === id && e.index === index).map((e) => (e as { token: number }).token);
  const done = (id: number, index = 0) => events.find((e) => e.type === 'done' && e.id === id && e.index === index) as Extract<EngineEvent, { type: 'done' }> | undefined;
  return { sched, events, run, ids, done };
}

describe('Scheduler', () => {
  it('concurrent requests with chunked prefill give the one-at-a-time greedy ids, in fewer forwards', () => {
    const m = new FakeModel();
    const h = harness(m, settings({ prefillChunk: 7, maxRunning: 3 }));
    const prompts = [prompt(23, 1), prompt(5, 2), prompt(40, 3), prompt(9, 4), prompt(17, 5)];
    const rs = prompts.map((p, i) => req(p, { maxTokens: 6 + i }));
    rs.forEach((r) => h.sched.submit(r));
    h.run();
    rs.forEach((r, i) => {
      expect(h.ids(r.id)).toEqual(referenceGreedy(m, prompts[i]!, r.maxTokens));
      expect(h.done(r.id)!.done.reason).toBe('length');
    });
    // Chunked prefill: no forward prefills more than the chunk, and decode rows share forwards with prefill.
    for (const f of m.forwards) expect(f.filter((s) => s.rows > 1).reduce((a, s) => a + s.rows, 0)).toBeLessThanOrEqual(7);
    expect(m.forwards.some((f) => f.length >= 3)).toBe(true);
    const sequential = rs.reduce((a, r, i) => a + Math.ceil(prompts[i]!.length / 7) + r.maxTokens - 1, 0);
    expect(m.forwards.length).toBeLessThan(sequential);
    expect(h.sched.pool.available).toBe(64); // everything released (cached blocks stay evictable)
  });

  it('prefix cache: a shared prefix and a second chat turn prefill only the new tokens, with the same ids', () => {
    const m = new FakeModel();
    const h = harness(m, settings());
    const sys = prompt(22, 9);
    const a = req([...sys, 1, 2, 3], { maxTokens: 5 });
    h.sched.submit(a);
    h.run();
    const b = req([...sys, 4, 5], { maxTokens: 5 });
    h.sched.submit(b);
    h.run();
    expect(h.done(b.id)!.done.cachedTokens).toBe(20); // 5 full blocks of the 22-token system prompt
    expect(h.ids(b.id)).toEqual(referenceGreedy(m, [...sys, 4, 5], 5));
    // Second turn: the first turn's prompt + its answer + a new message.
    const turn2 = [...sys, 1, 2, 3, ...h.ids(a.id), 7, 8, 9];
    const c = req(turn2, { maxTokens: 4 });
    const before = m.forwards.length;
    h.sched.submit(c);
    h.run();
    const cached = h.done(c.id)!.done.cachedTokens;
    expect(cached).toBe(Math.floor((sys.length + 3 + 4) / 4) * 4); // the answer's last token was never fed: 4 of 5 are in the KV
    const prefilled = m.forwards.slice(before).flat().filter((s) => s.rows > 1 || s.start < turn2.length - 1).reduce((x, s) => x + s.rows, 0);
    expect(prefilled).toBe(turn2.length - cached);
    expect(h.ids(c.id)).toEqual(referenceGreedy(m, turn2, 4));
  });

  it('with the prefix cache off nothing is shared (cold benchmarks)', () => {
    const h = harness(new FakeModel(), settings({ prefixCache: false }));
    const a = req(prompt(30, 1), { maxTokens: 3 }), b = req(prompt(30, 1), { maxTokens: 3 });
    h.sched.submit(a);
    h.run();
    h.sched.submit(b);
    h.run();
    expect(h.done(b.id)!.done.cachedTokens).toBe(0);
    expect(h.sched.stats().blocksCached).toBe(0);
  });

  it('the prefix key covers the mode and the media behind placeholder rows', () => {
    const m = new FakeModel();
    const h = harness(m, settings({ blockSize: 4 }));
    const IMG = 200010; // every image's placeholder rows carry this one id
    const ids = [3, 4, IMG, IMG, IMG, IMG, IMG, IMG, 5, 6, 7, 9];
    const group = (px: number): MediaGroup => ({ kind: 'image', key: `img${px}`, items: [{ kind: 'image', key: `img${px}`, rows: 6 }], image: { pixelValues: Float32Array.of(px), attentionMask: new Float32Array(1), imageSizes: [[448, 448]], numImgTokens: [6] } });
    const r1 = req(ids, { mode: 'vision', media: [group(1)], maxTokens: 3 });
    h.sched.submit(r1);
    h.run();
    expect(m.encodes).toBe(1);
    const r2 = req(ids, { mode: 'vision', media: [group(2)], maxTokens: 3 }); // same ids, another image
    h.sched.submit(r2);
    h.run();
    expect(h.done(r2.id)!.done.cachedTokens).toBe(0); // block 0 already holds two image rows: another image, another key
    expect(m.encodes).toBe(2);
    const r3 = req(ids, { mode: 'speech', media: [group(1)], maxTokens: 3 }); // same image, another adapter
    h.sched.submit(r3);
    h.run();
    expect(h.done(r3.id)!.done.cachedTokens).toBe(0);
    const r4 = req(ids, { mode: 'vision', media: [group(1)], maxTokens: 3 }); // the first request again
    h.sched.submit(r4);
    h.run();
    expect(h.done(r4.id)!.done.cachedTokens).toBe(8);
    expect(h.ids(r4.id)).toEqual(h.ids(r1.id));
    expect(h.ids(r2.id)).not.toEqual(h.ids(r1.id));
    // r3 found image 1 in the media cache; r4's uncached rows hold no image rows, so it needs no features.
    expect(m.encodes).toBe(2);
  });
});

describe('Scheduler: n > 1, abort, admission, room', () => {
  it('n = 3 forks after the prompt: the forks share its full blocks, copy the partial one, sample on their own', () => {
    const m = new FakeModel();
    const h = harness(m, settings());
    const p = prompt(10, 3); // 2 full blocks + 2 rows
    const r = req(p, { n: 3, maxTokens: 6, sampler: { params: { temperature: 1, vocabLimit: 64 }, seed: 5 } });
    h.sched.submit(r);
    h.sched.step(); // the whole prompt (chunk 16) → fork → 3 sequences
    const firstFull = (h.sched as unknown as { running: Array<{ table: number[] }> }).running[0]!.table[0]!;
    expect(h.sched.pool.refCount(firstFull)).toBe(3);
    expect(m.forwards[0]!.length).toBe(1); // the prompt ran once
    h.run();
    const outs = [0, 1, 2].map((i) => h.ids(r.id, i));
    outs.forEach((o, i) => { expect(o).toHaveLength(6); expect(h.done(r.id, i)!.done.reason).toBe('length'); });
    expect(new Set(outs.map((o) => o.join())).size).toBeGreaterThan(1); // different seeds per fork
    // Greedy forks all equal the one-at-a-time ids (each read its own copy of the partial block).
    const g = req(p, { n: 2, maxTokens: 6 });
    h.sched.submit(g);
    h.run();
    const ref = referenceGreedy(m, p, 6);
    expect(h.ids(g.id, 0)).toEqual(ref);
    expect(h.ids(g.id, 1)).toEqual(ref);
    expect(h.sched.pool.available).toBe(64);
  });

  it('abort frees the sequence before the next step; its blocks return to the pool', () => {
    const m = new FakeModel();
    const h = harness(m, settings({ numBlocks: 20 }));
    const a = req(prompt(30, 1), { maxTokens: 40 }), b = req(prompt(6, 2), { maxTokens: 40 });
    h.sched.submit(a);
    h.sched.submit(b);
    for (let i = 0; i < 5; i++) h.sched.step();
    const freeBefore = h.sched.pool.available;
    h.sched.abort(a.id);
    expect(h.done(a.id)!.done.reason).toBe('cancelled');
    expect(h.sched.pool.available).toBeGreaterThanOrEqual(freeBefore + Math.ceil(34 / 4) - 1);
    const n = m.forwards.length;
    h.sched.step();
    expect(m.forwards[n]!.length).toBe(1); // only b's row
    h.sched.abort(b.id);
    expect(h.sched.hasWork).toBe(false);
    expect(h.sched.pool.available).toBe(20);
    // A request aborted while waiting ends too.
    const s1 = harness(new FakeModel(), settings({ maxRunning: 1 }));
    const x = req(prompt(5, 1), { maxTokens: 50 }), y = req(prompt(5, 2));
    s1.sched.submit(x);
    s1.sched.submit(y);
    s1.sched.abort(y.id);
    expect(s1.done(y.id)!.done.reason).toBe('cancelled');
    expect(s1.sched.stats().waiting).toBe(0);
  });

  it('admission: beyond maxRunning requests wait, beyond maxWaiting they get a 429', () => {
    const h = harness(new FakeModel(), settings({ maxRunning: 2, maxWaiting: 1 }));
    h.sched.submit(req(prompt(5, 1)));
    h.sched.submit(req(prompt(5, 2)));
    h.sched.submit(req(prompt(5, 3))); // waits
    let err: unknown;
    try { h.sched.submit(req(prompt(5, 4))); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).status).toBe(429);
    expect((err as EngineError).message).toMatch(/busy.*retry later/);
    expect(h.sched.stats()).toMatchObject({ running: 2, waiting: 1 });
    h.run();
    expect(h.events.filter((e) => e.type === 'done')).toHaveLength(3);
  });

  it('a request that can never fit gets a 400 naming the numbers; one that cannot fit now waits and then runs', () => {
    const m = new FakeModel();
    const h = harness(m, settings({ numBlocks: 10 })); // 40 tokens
    let err: unknown;
    try { h.sched.submit(req(prompt(30, 1), { maxTokens: 20 })); } catch (e) { err = e; }
    expect((err as EngineError).status).toBe(400);
    expect((err as EngineError).message).toMatch(/needs 13 KV blocks.*holds 10 blocks of 4 tokens.*max_tokens/);
    const a = req(prompt(24, 2), { maxTokens: 8 }), b = req(prompt(20, 3), { maxTokens: 8 });
    h.sched.submit(a);
    h.sched.submit(b); // 6 + 5 blocks of prompt > 10: waits for a
    expect(h.sched.stats()).toMatchObject({ running: 1, waiting: 1 });
    h.run();
    expect(h.ids(a.id)).toEqual(referenceGreedy(m, prompt(24, 2), 8));
    expect(h.ids(b.id)).toEqual(referenceGreedy(m, prompt(20, 3), 8));
  });

  it('when decoding runs out of blocks the newest sequence is preempted and recomputed; ids are unchanged', () => {
    const m = new FakeModel();
    const h = harness(m, settings({ numBlocks: 12 }));
    const ps = [prompt(14, 1), prompt(14, 2), prompt(10, 3)];
    const rs = ps.map((p) => req(p, { maxTokens: 16 })); // 4 + 4 + 3 blocks to start, 7-8 each at the end
    rs.forEach((r) => h.sched.submit(r));
    h.run();
    rs.forEach((r, i) => expect(h.ids(r.id)).toEqual(referenceGreedy(m, ps[i]!, 16)));
    // Somebody was recomputed from position 0 after having generated.
    expect(m.forwards.flat().filter((s) => s.start === 0).length).toBeGreaterThan(3);
  });

  it('LongRoPE: a sequence crossing the switch is re-prefilled once in the long regime, the others are untouched', () => {
    const m = new FakeModel(400, 40);
    const h = harness(m, settings({ prefillChunk: 8 }));
    const long = req(prompt(35, 1), { maxTokens: 12 }), short = req(prompt(6, 2), { maxTokens: 12 }), already = req(prompt(45, 3), { maxTokens: 4 });
    [long, short, already].forEach((r) => h.sched.submit(r));
    h.run();
    expect(h.ids(long.id)).toEqual(referenceGreedy(m, prompt(35, 1), 12));
    expect(h.ids(short.id)).toEqual(referenceGreedy(m, prompt(6, 2), 12));
    expect(h.ids(already.id)).toEqual(referenceGreedy(m, prompt(45, 3), 4));
    // The switch: 35 + 6 = 41 tokens > 40 → a long prefill from 0 of 41 rows, in chunks.
    const rebuilt = m.forwards.flat().filter((s) => s.long && s.start < 41 && s.rows > 1);
    expect(rebuilt.reduce((a, s) => a + s.rows, 0)).toBeGreaterThanOrEqual(41 + 45 - 1);
    expect(m.forwards.flat().filter((s) => !s.long && s.start >= 41)).toHaveLength(0);
  });

  it('stop ids end a sequence with reason stop; the context limit ends it with length', () => {
    const m = new FakeModel(30);
    const h = harness(m, settings());
    const p = prompt(8, 4);
    const ref = referenceGreedy(m, p, 10);
    const r = req(p, { maxTokens: 10, stopIds: [ref[3]!] });
    h.sched.submit(r);
    h.run();
    expect(h.ids(r.id)).toEqual(ref.slice(0, ref.indexOf(ref[3]!) + 1));
    expect(h.done(r.id)!.done.reason).toBe('stop');
    const c = req(prompt(25, 5), { maxTokens: 50 });
    h.sched.submit(c);
    h.run();
    expect(h.ids(c.id)).toHaveLength(5); // 30 positions
    expect(h.done(c.id)!.done.reason).toBe('length');
  });
});
