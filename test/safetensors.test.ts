import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SafetensorsCheckpoint, SafetensorsFile, writeSafetensors } from '../src/io/safetensors.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../src/tensor/dtype.js';
import { GOLDEN_DIR } from './helpers/golden.js';
import { NativeBackend } from '../src/tensor/native.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'phi4mm-st-'));

describe('half-precision codecs', () => {
  it('round-trips bf16 and f16 on representable values and rounds to nearest even', () => {
    for (const v of [0, 1, -2.5, 3.140625, 65504, 2 ** -24, -(2 ** -14)]) {
      expect(f16ToF32(f32ToF16(v))).toBe(v);
    }
    for (const v of [0, 1, -2.5, 3.140625, 1e30, -1e-30]) expect(bf16ToF32(f32ToBf16(bf16ToF32(f32ToBf16(v))))).toBe(bf16ToF32(f32ToBf16(v)));
    // 1 + 2^-8 is exactly halfway between bf16 1 and 1+2^-7: ties to even → 1.
    expect(bf16ToF32(f32ToBf16(1 + 2 ** -8))).toBe(1);
    expect(bf16ToF32(f32ToBf16(1 + 3 * 2 ** -8))).toBe(1 + 2 ** -6);
    // f16: 2049 is halfway between 2048 and 2050 → 2048 (even mantissa).
    expect(f16ToF32(f32ToF16(2049))).toBe(2048);
    expect(f16ToF32(f32ToF16(1e6))).toBe(Infinity);
  });
});

describe('safetensors', () => {
  it('writes and reads back every supported encoding, sharded through an index', () => {
    const d = tmp();
    const a = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
    writeSafetensors(join(d, 's1.safetensors'), [
      { name: 'a', dtype: 'F32', shape: [2, 3], data: a },
      { name: 'b', dtype: 'BF16', shape: [6], data: () => a },
    ]);
    writeSafetensors(join(d, 's2.safetensors'), [{ name: 'c', dtype: 'F16', shape: [3, 2], data: a }], { format: 'pt' });
    writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors' } }));
    const ck = SafetensorsCheckpoint.open(d);
    expect(ck.names().sort()).toEqual(['a', 'b', 'c']);
    for (const n of ['a', 'b', 'c']) expect([...ck.readF32(n)]).toEqual([...a]);
    expect(ck.info('c').shape).toEqual([3, 2]);
    // readRaw into a caller's buffer (the native loader's huge-page memory): same bytes, and a wrong size is named.
    const into = new Uint8Array(24);
    expect(ck.readRaw('a', into)).toBe(into);
    expect(into).toEqual(ck.readRaw('a'));
    expect(() => ck.readRaw('a', new Uint8Array(20))).toThrow(/tensor "a" has 24 bytes, the buffer given for it 20/);
    ck.close();
  });

  it('the native allocWeights gives zeroed, writable memory of the size asked (huge pages advised)', () => {
    let be: NativeBackend;
    try { be = NativeBackend.create(); } catch (e) { if (process.env.PHI4MM_NO_NATIVE === '1') return; throw e; }
    for (const n of [0, 1, 4097, (2 << 20) + 3]) {
      const b = be.allocWeights(n);
      expect(b.length).toBe(n);
      expect(b.every((v) => v === 0)).toBe(true);
      if (n) { b[n - 1] = 7; expect(b[n - 1]).toBe(7); }
      expect(be.adviseHugePages(b)).toBe(0); // already on huge pages: nothing to collapse
    }
  });

  it('rejects truncated files, bad headers and unknown dtypes with messages naming the problem', () => {
    const d = tmp();
    const p = join(d, 'x.safetensors');
    writeSafetensors(p, [{ name: 'w', dtype: 'F32', shape: [4], data: new Float32Array(4) }]);
    const full = readFileSync(p);
    writeFileSync(join(d, 't.safetensors'), full.subarray(0, full.length - 4));
    expect(() => SafetensorsFile.open(join(d, 't.safetensors'))).toThrow(/truncated/);
    writeFileSync(join(d, 'h.safetensors'), Buffer.concat([Buffer.from([5, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{oops')]));
    expect(() => SafetensorsFile.open(join(d, 'h.safetensors'))).toThrow(/not valid JSON/);
    const hdr = Buffer.from(JSON.stringify({ w: { dtype: 'F8_E9', shape: [1], data_offsets: [0, 1] } }));
    const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(hdr.length));
    writeFileSync(join(d, 'u.safetensors'), Buffer.concat([len, hdr, Buffer.alloc(1)]));
    expect(() => SafetensorsFile.open(join(d, 'u.safetensors'))).toThrow(/unknown dtype "F8_E9"/);
    writeFileSync(join(d, 'tiny.safetensors'), Buffer.alloc(3));
    expect(() => SafetensorsFile.open(join(d, 'tiny.safetensors'))).toThrow(/too small/);
  });

  it('loads both golden checkpoints (bf16) and they agree tensor for tensor through the name mapping', () => {
    const orig = SafetensorsCheckpoint.open(join(GOLDEN_DIR, 'model_orig'));
    const hf = SafetensorsCheckpoint.open(join(GOLDEN_DIR, 'model_hf'));
    const mapping = JSON.parse(readFileSync(join(GOLDEN_DIR, 'name_mapping.json'), 'utf8'));
    const h2o: Record<string, string> = mapping.hf_to_orig;
    expect(Object.keys(h2o).length).toBe(163);
    for (const [h, o] of Object.entries(h2o)) {
      expect(orig.info(o).shape).toEqual(hf.info(h).shape);
      const a = orig.readF32(o), b = hf.readF32(h);
      expect(a.length).toBe(b.length);
      for (let i = 0; i < a.length; i += 97) expect(a[i]).toBe(b[i]);
    }
    expect(orig.info('model.embed_tokens.weight').dtype).toBe('BF16');
    orig.close(); hf.close();
  });
});
