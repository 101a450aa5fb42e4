// The Phi-4-mini decoder against the golden a_text / g_long_rope fixtures, both checkpoint layouts.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { golden, GOLDEN_DIR, expectClose } from '../helpers/golden.js';
import { loadConfig } from '../../src/models/phi4mm/configuration.js';
import { CheckpointProvider } from '../../src/models/phi4mm/checkpoint.js';
import { StrictWeights } from '../../src/nn/weights.js';
import { Phi4MiniModel, type Adapter } from '../../src/models/phi4mm/language_model.js';
import { ReferenceBackend } from '../../src/tensor/reference.js';

const be = new ReferenceBackend();

function loadLm(layout: 'orig' | 'hf') {
  const dir = join(GOLDEN_DIR, layout === 'orig' ? 'model_orig' : 'model_hf');
  const cfg = loadConfig(dir);
  const ws = new StrictWeights(new CheckpointProvider(dir, layout));
  ws.ignore((n) => n.startsWith('model.embed_tokens_extend.'));
  const lm = new Phi4MiniModel(ws, cfg.text, { vision: cfg.vision_lora, speech: cfg.speech_lora });
  ws.finish();
  return lm;
}

const ids = () => Array.from(golden('a_text').tensor('input_ids').data);
// Short contexts: the reference's own f32-vs-f64 error is ≤ 4.3e-5 on logits and 5e-6 on hidden states
// (golden README §10); 1e-4 absolute + 1e-4 relative leaves room for a different summation order.
const TOL = { atol: 1e-4, rtol: 1e-4 };

describe('Phi-4-mini decoder (golden a_text)', () => {
  const lm = loadLm('orig');
  it('base (no LoRA): hidden states per layer and first/last logits', () => {
    const g = golden('a_text');
    const r = lm.forward(be, ids(), lm.newCache(), { adapter: null, logits: 'all', outputHiddenStates: true });
    for (let i = 0; i < 3; i++) expectClose(r.hiddenStates![i]!, g.tensor(`base.hidden_states.${i}`).data, TOL, `hidden_states.${i}`);
    const v = lm.cfg.vocab_size;
    expectClose(r.logits.subarray(0, v), g.tensor('base.logits_first').data, TOL, 'logits_first');
    expectClose(r.logits.subarray(r.logits.length - v), g.tensor('base.logits_last').data, TOL, 'logits_last');
  });

  for (const ad of ['vision', 'speech'] as Adapter[]) {
    it(`${ad} LoRA: last hidden state and last logits`, () => {
      const g = golden('a_text');
      const r = lm.forward(be, ids(), lm.newCache(), { adapter: ad });
      expectClose(r.lastHiddenState, g.tensor(`lora_${ad}.last_hidden_state`).data, TOL, `${ad} last_hidden_state`);
      expectClose(r.logits, g.tensor(`lora_${ad}.logits_last`).data, TOL, `${ad} logits_last`);
    });
  }

  it('rope tables equal the reference short table (already × attention factor)', () => {
    const g = golden('a_text');
    const { cos, sin } = lm.rope.tables(0, 8, false);
    // f32 cos/sin of f32 angles: identical up to 1 ulp of the libm.
    expectClose(cos, g.tensor('rope_short.cos').data, { atol: 2e-7 }, 'cos');
    expectClose(sin, g.tensor('rope_short.sin').data, { atol: 2e-7 }, 'sin');
  });

  it('incremental decoding with the cache equals one full forward', () => {
    const all = ids();
    const full = lm.forward(be, all, lm.newCache(), { adapter: 'vision' });
    const cache = lm.newCache();
    lm.forward(be, all.slice(0, 5), cache, { adapter: 'vision', logits: 'none' });
    lm.forward(be, all.slice(5, 7), cache, { adapter: 'vision', logits: 'none' });
    const inc = lm.forward(be, all.slice(7), cache, { adapter: 'vision' });
    // Same math in a different grouping of rows: agreement to f32 rounding.
    expectClose(inc.logits, full.logits, { atol: 1e-5, rtol: 1e-5 }, 'incremental vs full');
  });

  it('the transformers layout (renamed tensors + adapter folders) gives the same logits as the original', () => {
    const hf = loadLm('hf');
    for (const ad of [null, 'vision', 'speech'] as Array<Adapter | null>) {
      const a = lm.forward(be, ids(), lm.newCache(), { adapter: ad }).logits;
      const b = hf.forward(be, ids(), hf.newCache(), { adapter: ad }).logits;
      expect(Array.from(b)).toEqual(Array.from(a));
    }
  });
});
