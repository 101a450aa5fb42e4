// The Phi-4-mini decoder against golden a_text, through the pure-TS reference backend.
import { describe, expect, it } from 'vitest';
import { golden, expectClose } from '../helpers/golden.js';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import { createBackend } from '../../src/tensor/backend.js';
import { StrictWeights, type TensorProvider } from '../../src/nn/weights.js';
import { openCheckpoint } from '../../src/models/phi4mm/checkpoint.js';
import { KVCache, Phi4MiniDecoder } from '../../src/models/phi4mm/decoder.js';
import { isEncoderTensor, loadDecoder, modelDir } from './load.js';

const be = new ReferenceBackend();
const g = golden('a_text');
const ids = Array.from(g.tensor('input_ids').data);
// Short contexts: the reference's own f32-vs-f64 error is ≤ 4.3e-5 on logits and ≤ 5e-6 on hidden states
// (golden README §10); atol 1e-4 + rtol 1e-4 leaves room for another summation order, and is ~100x below
// the smallest top-1/top-2 margin.
const TOL = { atol: 1e-4, rtol: 1e-4 };

describe('Phi4MiniDecoder (golden a_text, reference backend)', () => {
  const lm = loadDecoder('orig');
  const V = lm.cfg.vocab_size;

  it('base (no LoRA): hidden states after every layer, first and last logits', () => {
    const r = lm.forward(be, ids, { logits: 'all', outputHiddenStates: true });
    expect(r.hiddenStates!.length).toBe(lm.cfg.num_hidden_layers + 1);
    r.hiddenStates!.forEach((h, i) => expectClose(h, g.tensor(`base.hidden_states.${i}`).data, TOL, `hidden_states.${i}`));
    expect(r.logits.length).toBe(ids.length * V);
    expectClose(r.logits.subarray(0, V), g.tensor('base.logits_first').data, TOL, 'logits_first');
    expectClose(r.logits.subarray((ids.length - 1) * V), g.tensor('base.logits_last').data, TOL, 'logits_last');
    expect(r.lastHiddenState).toEqual(r.hiddenStates![lm.cfg.num_hidden_layers]);
  });

  it('logits are computed only where asked', () => {
    const last = lm.forward(be, ids).logits;
    expect(last.length).toBe(V);
    expectClose(last, g.tensor('base.logits_last').data, TOL, 'default = last');
    expect(lm.forward(be, ids, { logits: 'none' }).logits.length).toBe(0);
  });

  for (const [mode, adapter] of [['vision', 'vision'], ['vision_speech', 'vision'], ['speech', 'speech']] as const) {
    it(`mode ${mode} runs the ${adapter} LoRA: last hidden state and last logits`, () => {
      const r = lm.forward(be, ids, { mode });
      expectClose(r.lastHiddenState, g.tensor(`lora_${adapter}.last_hidden_state`).data, TOL, `${mode} last_hidden_state`);
      expectClose(r.logits, g.tensor(`lora_${adapter}.logits_last`).data, TOL, `${mode} logits_last`);
    });
  }

  it('RoPE short table equals the reference (cos/sin already x attention factor)', () => {
    expect(lm.rope.attentionFactor).toBeCloseTo(g.json.rope.attention_scaling, 12);
    const n = g.tensor('rope_short.cos').shape[0]!;
    const { cos, sin } = lm.rope.tables(0, n, false);
    // float32 cos/sin of the same float32 angles: equal up to 1-2 ulp of the libm (values ≤ 1.19).
    expectClose(cos, g.tensor('rope_short.cos').data, { atol: 3e-7 }, 'cos');
    expectClose(sin, g.tensor('rope_short.sin').data, { atol: 3e-7 }, 'sin');
  });

  it('incremental decoding with the cache equals one full forward', () => {
    const full = lm.forward(be, ids, { mode: 'speech', logits: 'all' });
    const cache = lm.newCache(2); // small on purpose: it must grow
    const parts = [ids.slice(0, 3), ids.slice(3, 4), ids.slice(4, 7), ids.slice(7)];
    const rows: Float32Array[] = parts.map((p) => lm.forward(be, p, { mode: 'speech', cache, logits: 'all' }).logits);
    expect(cache.length).toBe(ids.length);
    const inc = new Float32Array(full.logits.length);
    let o = 0;
    for (const r of rows) { inc.set(r, o); o += r.length; }
    // Same arithmetic per row; only attention spans differ in grouping: f32 rounding.
    expectClose(inc, full.logits, { atol: 1e-5, rtol: 1e-5 }, 'incremental vs full');
  });

  it('inputsEmbeds replaces the embedding lookup', () => {
    const emb = lm.embed(ids);
    expectClose(emb, g.tensor('base.hidden_states.0').data, { atol: 0 }, 'embedding');
    const a = lm.forward(be, ids, { mode: 'vision' }).logits.slice();
    const b = lm.forward(be, ids.map(() => 0), { mode: 'vision', inputsEmbeds: emb }).logits;
    expect(Array.from(b)).toEqual(Array.from(a));
  });

  it('the transformers layout gives identical logits', () => {
    const hf = loadDecoder('hf');
    for (const mode of ['language', 'vision', 'speech'] as const) {
      expect(Array.from(hf.forward(be, ids, { mode }).logits), mode).toEqual(Array.from(lm.forward(be, ids, { mode }).logits));
    }
  });

  it('bf16 storage of the base and LoRA weights gives the same logits (the fixture weights are bf16-exact)', () => {
    const bf = loadDecoder('orig', { policy: () => 'bf16', key: 'bf16' });
    expect(bf.layers[0]!.self_attn.qkv_proj.weight.dtype).toBe('bf16');
    expect(bf.layers[0]!.self_attn.qkv_proj.adapters.get('vision')!.A.dtype).toBe('bf16'); // LoRA follows the policy too
    expectClose(bf.forward(be, ids, { mode: 'speech' }).logits, lm.forward(be, ids, { mode: 'speech' }).logits, { atol: 1e-5, rtol: 1e-5 }, 'bf16 vs f32');
  });

  it('an untied LM head is read from lm_head.weight', () => {
    const { config, provider } = openCheckpoint(modelDir('orig'));
    const alias: TensorProvider = {
      where: provider.where,
      names: () => [...provider.names(), 'lm_head.weight'],
      info: (n) => provider.info(n === 'lm_head.weight' ? 'model.embed_tokens.weight' : n),
      readF32: (n) => { const x = provider.readF32(n === 'lm_head.weight' ? 'model.embed_tokens.weight' : n); return n === 'lm_head.weight' ? x.map((v) => 2 * v) : x; },
      readRaw: (n) => provider.readRaw(n === 'lm_head.weight' ? 'model.embed_tokens.weight' : n),
    };
    const ws = new StrictWeights(alias);
    ws.ignore(isEncoderTensor);
    const untied = new Phi4MiniDecoder(ws, { ...config.text, tie_word_embeddings: false }, { vision: config.vision_lora, speech: config.speech_lora });
    ws.finish();
    provider.close();
    const want = g.tensor('base.logits_last').data.map((v) => 2 * v); // head x2 → logits x2
    expectClose(untied.forward(be, ids).logits, want, { atol: 2e-4, rtol: 1e-4 }, 'untied head');
  });

  it('the default backend (native when built) agrees with the reference', async () => {
    const fast = await createBackend('auto');
    // Different kernels (blocked f32 GEMM, fused attention): f32 rounding only.
    expectClose(lm.forward(fast, ids, { mode: 'vision' }).logits, g.tensor('lora_vision.logits_last').data, TOL, `${fast.name} backend`);
  });

  it('bad input: clear errors', () => {
    expect(() => lm.forward(be, [])).toThrow(/no tokens/);
    expect(() => lm.forward(be, [V])).toThrow(/outside the vocabulary/);
    expect(() => lm.forward(be, [1, 2], { inputsEmbeds: new Float32Array(3) })).toThrow(/inputsEmbeds has 3 values, expected 2 tokens x 32/);
    expect(() => lm.forward(be, [1], { cache: new KVCache(lm.layers.length, 2 * lm.headDim) })).toThrow(/cache was made for another model/);
    const noLora = new Phi4MiniDecoder(new StrictWeights(openCheckpoint(modelDir('orig')).provider), lm.cfg, {});
    expect(() => noLora.forward(be, ids, { mode: 'speech' })).toThrow(/no "speech" LoRA adapter is loaded/);
  });
});
