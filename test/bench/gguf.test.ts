// The in-tree GGUF writer (bench/llama/gguf.ts) read back by an independent parser of the GGUF v3 layout:
// header counts, every metadata key/value, tensor infos (ggml dims order, type ids, 32-byte aligned offsets)
// and the tensor bytes at those offsets.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GGML_TYPE, writeGguf } from '../../bench/llama/gguf.js';

function parse(b: Buffer) {
  let o = 0;
  const u32 = () => { const v = b.readUInt32LE(o); o += 4; return v; };
  const u64 = () => { const v = Number(b.readBigUInt64LE(o)); o += 8; return v; };
  const str = () => { const n = u64(); const s = b.toString('utf8', o, o + n); o += n; return s; };
  const val = (t: number): unknown => {
    switch (t) {
      case 4: return u32();
      case 5: { const v = b.readInt32LE(o); o += 4; return v; }
      case 6: { const v = b.readFloatLE(o); o += 4; return v; }
      case 7: return b[o++] === 1;
      case 8: return str();
      case 9: { const et = u32(); const n = u64(); return Array.from({ length: n }, () => val(et)); }
      default: throw new Error(`type ${t}`);
    }
  };
  expect(b.toString('ascii', 0, 4)).toBe('GGUF');
  o = 4;
  expect(u32()).toBe(3);
  const nt = u64(), nkv = u64();
  const kv: Record<string, unknown> = {};
  for (let i = 0; i < nkv; i++) { const k = str(); kv[k] = val(u32()); }
  const infos = Array.from({ length: nt }, () => {
    const name = str(); const nd = u32();
    const dims = Array.from({ length: nd }, u64);
    return { name, dims, type: u32(), offset: u64() };
  });
  const dataStart = Math.ceil(o / 32) * 32;
  return { kv, infos, dataStart };
}

describe('GGUF writer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gguf-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes metadata, tensor infos and aligned data that an independent parser reads back', () => {
    const q4 = Uint8Array.from({ length: 2 * 144 }, (_, i) => (i * 31) & 255); // [2 rows, 256] Q4_K
    const f = new Float32Array([1.5, -2, 3.25]);
    const q8 = Uint8Array.from({ length: 3 * 34 }, (_, i) => (i * 7) & 255);   // [3 rows, 32] Q8_0
    const path = join(dir, 't.gguf');
    writeGguf(path, {
      'general.architecture': { str: 'phi3' }, 'phi3.block_count': { u32: 32 }, 'phi3.rope.freq_base': { f32: 10000 },
      'x.flag': { bool: true }, 'x.neg': { i32: -7 }, 'x.list': { strs: ['a', 'bc'] }, 'x.floats': { f32s: [0.5, 2] },
    }, [
      { name: 'a.weight', dims: [256, 2], type: 'Q4_K', data: () => q4 },
      { name: 'norm', dims: [3], type: 'F32', data: () => new Uint8Array(f.buffer) },
      { name: 'emb', dims: [32, 3], type: 'Q8_0', data: () => q8 },
    ]);
    const b = readFileSync(path);
    const { kv, infos, dataStart } = parse(b);
    expect(kv).toEqual({ 'general.architecture': 'phi3', 'phi3.block_count': 32, 'phi3.rope.freq_base': 10000, 'x.flag': true, 'x.neg': -7, 'x.list': ['a', 'bc'], 'x.floats': [0.5, 2] });
    expect(infos.map((t) => [t.name, t.dims, t.type])).toEqual([['a.weight', [256, 2], GGML_TYPE.Q4_K], ['norm', [3], GGML_TYPE.F32], ['emb', [32, 3], GGML_TYPE.Q8_0]]);
    for (const t of infos) expect(t.offset % 32).toBe(0);
    const at = (i: number, n: number) => b.subarray(dataStart + infos[i]!.offset, dataStart + infos[i]!.offset + n);
    expect(Buffer.compare(at(0, q4.length), Buffer.from(q4))).toBe(0);
    expect(Array.from(new Float32Array(new Uint8Array(at(1, 12)).buffer))).toEqual([1.5, -2, 3.25]);
    expect(Buffer.compare(at(2, q8.length), Buffer.from(q8))).toBe(0);
    expect(b.length).toBe(dataStart + infos[2]!.offset + Math.ceil(q8.length / 32) * 32);
  });

  it('rejects a tensor whose bytes do not match its type and shape', () => {
    expect(() => writeGguf(join(dir, 'bad.gguf'), {}, [{ name: 'w', dims: [256, 2], type: 'Q4_K', data: () => new Uint8Array(10) }])).toThrow(/10 bytes, expected 288/);
    expect(() => writeGguf(join(dir, 'bad2.gguf'), {}, [{ name: 'w', dims: [100, 2], type: 'Q4_K', data: () => new Uint8Array(10) }])).toThrow(/not a multiple of 256/);
  });
});
