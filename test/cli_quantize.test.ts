// `phi4mm quantize` end to end on the tiny checkpoint: the folder it writes loads pre-quantized and gives the logits
// of a model quantized at load, and the weights are read once. saveQuantized on the worker engine host writes the
// worker's copy; it used to write an in-process copy, a second read and ISQ of the whole checkpoint (loadWeights on
// this thread, after the worker's load), which these tests count.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

vi.mock('../src/api/load.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('../src/api/load.js')>();
  return { ...m, loadWeights: vi.fn(m.loadWeights) };
});

const { loadWeights } = await import('../src/api/load.js');
const { main } = await import('../src/cli/main.js');
const { Phi4MM } = await import('../src/api/phi4mm.js');
const { tinyCheckpoint } = await import('./helpers/tiny_checkpoint.js');

afterEach(() => vi.restoreAllMocks());

describe('phi4mm quantize', () => {
  it('writes a folder that reloads pre-quantized with the logits of a load-time ISQ, reading the checkpoint once', async () => {
    const dir = tinyCheckpoint();
    const out = join(mkdtempSync(join(tmpdir(), 'phi4mm-cli-q-')), 'q8');
    let text = '';
    vi.spyOn(process.stderr, 'write').mockImplementation(((s: string) => { text += s; return true; }) as typeof process.stderr.write);
    const code = await main(['quantize', '-m', dir, '--isq', 'q8_0', '-o', out]);
    vi.mocked(process.stderr.write).mockRestore();
    expect(code, text).toBe(0);
    expect(text).toMatch(/ISQ: q8_0 \(quantized at load\)/);
    expect(text).toMatch(/wrote .* load it with -m/);
    // The call count, not toHaveBeenCalled: a failure message listing the calls would print the loaded tensors.
    expect(vi.mocked(loadWeights).mock.calls.length, 'loadWeights calls on this thread').toBe(0);

    const saved = await Phi4MM.fromPretrained(out, { engine: { host: 'inline' } });
    const direct = await Phi4MM.fromPretrained(dir, { isq: 'q8_0', engine: { host: 'inline' } });
    try {
      expect(saved.loadReport.isq).toBe('none');
      expect(saved.loadReport.counts['q8_0']).toBe(direct.loadReport.counts['q8_0']);
      // Bit-equal: the saved bytes are the load-time ISQ's, read back into the same kernels.
      const ids = Int32Array.from([200021, 12194, 200020, 200019]);
      const a = saved.model.forward(saved.backend, ids).logits, b = direct.model.forward(direct.backend, ids).logits;
      expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(true);
    } finally {
      await Promise.all([saved.close(), direct.close()]);
    }
  });

  it('saveQuantized on the worker host writes the worker\'s copy: no load here, the inline host\'s bytes, errors cross back, the engine still serves', async () => {
    const dir = tinyCheckpoint();
    const base = mkdtempSync(join(tmpdir(), 'phi4mm-wsave-'));
    const viaWorker = await Phi4MM.fromPretrained(dir, { isq: 'q8_0' });
    try {
      await viaWorker.saveQuantized(join(base, 'worker'));
      expect(vi.mocked(loadWeights).mock.calls.length, 'loadWeights calls on this thread').toBe(0);
      await expect(viaWorker.saveQuantized(join(base, 'worker'))).rejects.toThrow(/already holds a model.safetensors; choose an empty folder/);
      const r = await viaWorker.chat([{ role: 'user', content: 'hi' }], { maxTokens: 2, temperature: 0 });
      expect(r.usage.completion_tokens).toBeGreaterThan(0);
    } finally {
      await viaWorker.close();
    }
    await expect(viaWorker.saveQuantized(join(base, 'closed'))).rejects.toThrow(/closed/);
    const inline = await Phi4MM.fromPretrained(dir, { isq: 'q8_0', engine: { host: 'inline' } });
    try {
      await inline.saveQuantized(join(base, 'inline'));
    } finally {
      await inline.close();
    }
    const bytes = (d: string) => readFileSync(join(base, d, 'model.safetensors'));
    expect(bytes('worker').equals(bytes('inline'))).toBe(true);
  });
});
