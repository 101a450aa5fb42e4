// The library API end to end on a tiny checkpoint folder (golden weights + generated tokenizer files).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Phi4MM, Messages } from '../src/index.js';
import { tinyCheckpoint } from './helpers/tiny_checkpoint.js';
import { loadWeights } from '../src/api/load.js';
import { NativeBackend } from '../src/tensor/native.js';
import { ReferenceBackend } from '../src/tensor/reference.js';
import { isQuantDType } from '../src/tensor/dtype.js';
import { isColumnMajor } from '../src/tensor/tensor.js';
import { golden, goldenPath } from './helpers/golden.js';

const dir = tinyCheckpoint();
const model = await Phi4MM.fromPretrained(dir);

describe('Phi4MM library API', () => {
  it('chat returns text and usage with tok/s; streamChat yields the same text', async () => {
    const msgs = new Messages().addMessage('system', 'You are terse.').addMessage('user', 'Hello there');
    const r = await model.chat(msgs, { maxTokens: 8 });
    expect(r.text.length).toBeGreaterThan(0);
    expect(r.usage.completion_tokens).toBeLessThanOrEqual(8);
    expect(r.usage.prompt_tokens).toBeGreaterThan(5);
    expect(r.usage.avg_prompt_tok_per_sec).toBeGreaterThan(0);
    expect(r.usage.avg_compl_tok_per_sec).toBeGreaterThan(0);
    let streamed = '';
    for await (const d of model.streamChat(msgs, { maxTokens: 8 })) streamed += d;
    expect(streamed).toBe(r.text);
  });

  it('image + audio given as paths: tags inserted, tokens expanded, routed to the vision LoRA', async () => {
    const g = golden('b_image_processor');
    const seen: { mode?: string; prompt?: Int32Array } = {};
    const orig = model.engine.generate.bind(model.engine);
    model.engine.generate = (r, ...rest) => { seen.mode = r.mode; seen.prompt = r.ids; return orig(r, ...rest); };
    try {
      const msgs = new Messages().addMultimodalMessage('user', 'What is this?', { images: [goldenPath('inputs', 'image_A_320x240.png')], audios: [goldenPath('inputs', 'audio_16k_3.3s.wav')] });
      const r = await model.chat(msgs, { maxTokens: 3 });
      expect(r.usage.completion_tokens).toBeGreaterThan(0);
    } finally {
      model.engine.generate = orig;
    }
    expect(seen.mode).toBe('vision_speech');
    const count = (id: number) => seen.prompt!.filter((x) => x === id).length;
    expect(count(200010)).toBe(g.tensor('num_img_tokens').data[0]); // image A: 477 tokens
    expect(count(200011)).toBe(golden('d_audio_features').tensor('wave16.audio_embed_sizes').data[0]); // 3.3 s: 41 tokens
    expect(Array.from(seen.prompt!.slice(0, 1))).toEqual([200021]); // <|user|> first: no BOS, no system turn
  });

  it('same seed, same sampled output; temperature > 0 differs from greedy for some seed', async () => {
    const msgs = new Messages().addMessage('user', 'Tell me a story');
    const a = await model.chat(msgs, { maxTokens: 10, temperature: 1.2, seed: 7 });
    const b = await model.chat(msgs, { maxTokens: 10, temperature: 1.2, seed: 7 });
    expect(b.text).toBe(a.text);
    const greedy = await model.chat(msgs, { maxTokens: 10 });
    const others = await Promise.all([1, 2, 3].map((s) => model.chat(msgs, { maxTokens: 10, temperature: 1.2, seed: s })));
    expect(others.some((o) => o.text !== greedy.text)).toBe(true);
  });

  it('stop strings end the text before the stop string; an aborted request finishes as cancelled', async () => {
    const msgs = new Messages().addMessage('user', 'Hello there');
    const full = await model.chat(msgs, { maxTokens: 12 });
    const cut = full.text.slice(3, 6);
    if (cut.length === 3) {
      const r = await model.chat(msgs, { maxTokens: 12, stop: cut });
      expect(r.finishReason).toBe('stop');
      expect(full.text.startsWith(r.text)).toBe(true);
      expect(r.text.includes(cut)).toBe(false);
    }
    const ctrl = new AbortController();
    let n = 0, reason = '';
    for await (const ev of model.streamEvents(msgs, { maxTokens: 50, signal: ctrl.signal })) {
      if (ev.type === 'delta' && ++n === 2) ctrl.abort();
      if (ev.type === 'done') reason = ev.finishReason;
    }
    expect(reason).toBe('cancelled');
  });

  it('bad options and inputs get clear errors', async () => {
    await expect(Phi4MM.fromPretrained(dir, { isq: 'q3' as never })).rejects.toThrow(/isq must be/);
    await expect(Phi4MM.fromPretrained(dir, { threadz: 2 } as never)).rejects.toThrow(/unknown option\(s\) threadz/);
    await expect(Phi4MM.fromPretrained('./no/such/dir')).rejects.toThrow(/no such folder/);
    await expect(model.chat([{ role: 'user', content: 'x' }], { temperature: -1 })).rejects.toThrow(/temperature/);
    await expect(model.chat([{ role: 'user', content: 'x' }], { maxTokens: 0 })).rejects.toThrow(/maxTokens/);
    await expect(model.chat([{ role: 'user', content: [{ type: 'image', image: Buffer.from('not an image at all, clearly') }] }])).rejects.toThrow(/image/i);
    await expect(model.chat([{ role: 'user', content: '<|image_1|> what?' }])).rejects.toThrow(/no attached media/);
  });
});

describe('ISQ and the pre-quantized save format', () => {
  it('q8_0 at load, saved, reloads without re-quantizing and gives identical logits', async () => {
    const q = await Phi4MM.fromPretrained(dir, { isq: 'q8_0' });
    expect(q.loadReport.counts['q8_0']).toBeGreaterThan(0);
    const out = mkdtempSync(join(tmpdir(), 'phi4mm-q-'));
    await q.saveQuantized(out);
    const r = await Phi4MM.fromPretrained(out);
    expect(r.loadReport.counts['q8_0']).toBe(q.loadReport.counts['q8_0']);
    const ids = Int32Array.from([200021, 12194, 200020, 200019]);
    const a = q.model.forward(q.backend, ids).logits, b = r.model.forward(r.backend, ids).logits;
    expect(Array.from(b)).toEqual(Array.from(a));
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).model_type).toBe('phi4mm');
  });

  // x16 is the layout of the AVX-512 VNNI and AVX2 kernels; the scalar build keeps ggml rows.
  for (const isa of NativeBackend.create().availableIsas()) {
    const simd = isa === 'avx512' || isa === 'avx2';
    it(`${isa}: the native loader ${simd ? 'interleaves quantized weights by 16 (x16)' : 'keeps ggml rows'}; the saved folder holds ggml rows`, () => {
      const be = NativeBackend.create();
      be.setIsa(isa);
      const loaded = loadWeights(dir, { isq: 'q4k' }, be);
      const quant = [...loaded.tensors.values()].filter((t) => isQuantDType(t.dtype));
      const x16 = quant.filter((t) => t.layout === 'x16');
      expect(quant.length).toBeGreaterThan(0);
      expect(x16.length).toBe(simd ? quant.filter((t) => t.shape[0]! % 16 === 0).length : 0);
      if (simd) expect(x16.length).toBeGreaterThan(0);
      const plain = loadWeights(dir, { isq: 'q4k' }, new ReferenceBackend());
      for (const [name, t] of loaded.tensors) {
        if (t.layout !== 'x16') continue;
        expect(Buffer.from(t.rowMajor().data as Uint8Array).equals(Buffer.from(plain.tensors.get(name)!.data as Uint8Array)), name).toBe(true);
      }
      be.setIsa(be.availableIsas()[0]!);
    });
  }

  it('the native loader places LoRA factors column-major; the saved folder holds them in rows, same values', async () => {
    const isLora = (name: string) => /\.lora_[AB]\.[^.]+\.weight$/.test(name);
    const plain = loadWeights(dir, { isq: 'q4k', lazyMedia: false }, new ReferenceBackend());
    const q = await Phi4MM.fromPretrained(dir, { isq: 'q4k', backend: 'native' });
    const out = mkdtempSync(join(tmpdir(), 'phi4mm-lora-'));
    await q.saveQuantized(out);  // the engine worker's copy: it reads the deferred adapters first
    q.model.loadAll();  // this thread's research copy, whose adapters are deferred too
    const paths = ['self_attn.qkv_proj', 'self_attn.o_proj', 'mlp.gate_up_proj', 'mlp.down_proj'] as const;
    const factors = q.model.lm.layers.flatMap((l) => paths.flatMap((p) => [...l.adapted(p).adapters.values()].flatMap((ad) => [ad.A, ad.B])));
    expect(factors.length).toBeGreaterThan(0);
    for (const t of factors) expect(isColumnMajor(t)).toBe(true);
    const names = [...plain.tensors.keys()].filter(isLora);
    expect(names.length).toBe(factors.length);
    const saved = loadWeights(out, { lazyMedia: false }, new ReferenceBackend());
    for (const name of names) {
      const t = saved.tensors.get(name)!;
      expect(t.isContiguous(), name).toBe(true);
      expect(t.data, name).toEqual(plain.tensors.get(name)!.data);
    }
  });
});
