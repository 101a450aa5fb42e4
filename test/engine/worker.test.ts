// The worker host: requests in flight fail with a clear error when the worker dies (instead of hanging), and
// later submissions are refused the same way.
import { describe, expect, it } from 'vitest';
import { workerEngine } from '../../src/engine/host.js';
import { EngineError } from '../../src/engine/types.js';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';

describe('engine worker', () => {
  it('a dead worker fails the requests in flight and refuses new ones', async () => {
    const { engine, worker, ready } = await workerEngine({ dir: tinyCheckpoint(), load: {}, engine: { kvCacheGb: 0.01 } });
    expect(ready.kvNote).toMatch(/KV cache: .* blocks of 16 tokens/);
    const req = { ids: Int32Array.from([200021, 12194, 200020, 200019]), mode: 'language' as const, media: [], sampler: { params: { temperature: 0, vocabLimit: 200064 } }, n: 1, maxTokens: 500, stopIds: [] };
    const it1 = engine.generate(req);
    const first = await it1.next(); // a token: the worker is generating
    expect(first.value?.type).toBe('token');
    await worker.terminate();
    const rest = (async () => { for (;;) { const r = await it1.next(); if (r.done) return null; } })();
    await expect(rest).rejects.toThrow(/engine worker exited/);
    let err: unknown;
    try { await engine.generate(req).next(); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).status).toBe(500);
  });
});
