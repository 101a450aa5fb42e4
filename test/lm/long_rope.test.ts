// LongRoPE: the factor switch at original_max_position_embeddings (golden g_long_rope) and the generate() rule.
import { describe, expect, it } from 'vitest';
import { golden, expectClose } from '../helpers/golden.js';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import { createBackend } from '../../src/tensor/backend.js';
import { generateTokens } from '../../src/models/phi4mm/generate.js';
import type { Phi4MiniDecoder } from '../../src/models/phi4mm/decoder.js';
import type { Backend } from '../../src/tensor/backend.js';
import { argmax } from '../../src/text/sampling.js';
import { loadDecoder } from './load.js';

const ref = new ReferenceBackend();
const g = golden('g_long_rope');
const all = Int32Array.from(g.tensor('input_ids_4100').data);
const orig = loadDecoder('orig');

/** Greedy generation that records a copy of the logits each step was sampled from. */
async function generateRecording(be: Backend, lm: Phi4MiniDecoder, prompt: Int32Array, n: number) {
  const seen: Float32Array[] = [], ids: number[] = [];
  for await (const id of generateTokens(be, lm, prompt, { mode: 'language', maxNewTokens: n, sample: (l) => { seen.push(l.slice()); return argmax(l); } })) ids.push(id);
  return { seen, ids };
}
const withSteps = (prompt: Int32Array, ids: number[], k: number) => Int32Array.from([...prompt, ...ids.slice(0, k)]);

describe('LongRoPE (golden g_long_rope, reference backend)', () => {
  // We reproduce the reference's float32 inv_freq and fround(inv_freq·pos) tables, so what is left is f32
  // summation order over 4 k keys: measured 1.3e-4 (hidden) / 6.4e-5 (logits). README §10 says ~5e-4 / 2e-4
  // are reachable this way (against 5e-3 / 3e-3 for float64 angles), so those are the bounds.
  const HIDDEN = { atol: 5e-4 }, LOGITS = { atol: 2e-4 };
  for (const [n, key, long] of [[4096, 'len4096', false], [4100, 'len4100', true]] as const) {
    it(`${n} tokens: ${long ? 'long' : 'short'} factors for every position`, () => {
      expect(orig.rope.useLong(n)).toBe(long);
      const r = orig.forward(ref, all.subarray(0, n));
      expectClose(r.lastHiddenState, g.tensor(`${key}.last_hidden_state`).data, HIDDEN, `${key} last_hidden_state`);
      expectClose(r.logits, g.tensor(`${key}.logits_last`).data, LOGITS, `${key} logits_last`);
      expect(argmax(r.logits)).toBe(g.json[key].top2_last.top1_id);
    });
  }

  it('the long table equals the reference at the listed positions', () => {
    const pos = Array.from(g.tensor('rope_long.positions').data), d = orig.rope.rotaryDim;
    const cos = g.tensor('rope_long.cos').data, sin = g.tensor('rope_long.sin').data;
    pos.forEach((p, i) => {
      const t = orig.rope.tables(p, 1, true);
      // Same float32 angle; float32 cos/sin differ by at most an ulp or two (values ≤ 1.19).
      expectClose(t.cos, cos.subarray(i * d, (i + 1) * d), { atol: 3e-7 }, `cos@${p}`);
      expectClose(t.sin, sin.subarray(i * d, (i + 1) * d), { atol: 3e-7 }, `sin@${p}`);
    });
  });
});

describe('generation across the LongRoPE switch', () => {
  // The same rule with a 24-token window (attention factor changes with it; the rule does not), cheap enough to
  // check every step on the reference backend.
  const WINDOW = 24;
  const small = loadDecoder('orig', { text: { original_max_position_embeddings: WINDOW }, key: 'window24' });

  it(`window ${WINDOW}: every step equals a fresh forward of the whole sequence with the prescribed factors`, async () => {
    const prompt = all.subarray(0, WINDOW - 4);
    const { seen, ids } = await generateRecording(ref, small, prompt, 8);
    expect(ids.length).toBe(8);
    for (let k = 0; k < ids.length; k++) {
      const seq = withSteps(prompt, ids, k);
      expect(small.rope.useLong(seq.length)).toBe(seq.length > WINDOW);
      // Same factors and tokens; only the grouping of rows differs (cache vs one pass): f32 rounding.
      expectClose(seen[k]!, small.forward(ref, seq).logits, { atol: 2e-5, rtol: 2e-5 }, `step ${k} (length ${seq.length})`);
    }
  });

  it(`window ${WINDOW}: keeping the short-factor cache past the switch would be wrong (the rebuild matters)`, () => {
    const seq = all.subarray(0, WINDOW + 1);
    const cache = small.newCache();
    small.forward(ref, seq.subarray(0, WINDOW), { cache, logits: 'none' });
    const stale = small.forward(ref, seq.subarray(WINDOW), { cache }).logits; // new token long, cached keys short
    const fresh = small.forward(ref, seq).logits;
    let maxDiff = 0;
    for (let i = 0; i < fresh.length; i++) maxDiff = Math.max(maxDiff, Math.abs(stale[i]! - fresh[i]!));
    expect(maxDiff).toBeGreaterThan(1e-2);
  });

  it('real window 4096: a 4090-token prompt generating 12 tokens stays equal to fresh forwards', async () => {
    const be = await createBackend('auto'); // 4 k-token forwards: the native backend when built
    const prompt = all.subarray(0, 4090);
    const { seen, ids } = await generateRecording(be, orig, prompt, 12);
    expect(ids.length).toBe(12);
    // Lengths 4095 (short), 4096 (last short), 4097 (the switch: cache rebuilt with long factors), 4101 (long).
    for (const k of [5, 6, 7, 11]) {
      const seq = withSteps(prompt, ids, k);
      expectClose(seen[k]!, orig.forward(be, seq).logits, { atol: 1e-4, rtol: 1e-4 }, `step ${k} (length ${seq.length})`);
    }
  });
});
