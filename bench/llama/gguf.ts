// A minimal GGUF (v3) writer: metadata key/values, then tensor infos, then the tensor bytes, each aligned to
// 32 bytes. Tensors are written one at a time from a callback, so a multi-GiB file never sits in memory.
import { closeSync, openSync, writeSync } from 'node:fs';

/** ggml_type ids of the formats written here. */
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8, Q4_K: 12, BF16: 30 } as const;
export type GgmlType = keyof typeof GGML_TYPE;
const BLOCK: Record<GgmlType, [elements: number, bytes: number]> = { F32: [1, 4], F16: [1, 2], Q8_0: [32, 34], Q4_K: [256, 144], BF16: [1, 2] };

export type GgufValue = { u32: number } | { i32: number } | { f32: number } | { bool: boolean } | { str: string } | { strs: string[] } | { f32s: number[] };

export interface GgufTensor {
  name: string;
  /** ggml order: ne[0] is the contiguous (row) dimension, e.g. [K, N] for an [N, K] matrix. */
  dims: number[];
  type: GgmlType;
  /** Produces the tensor's bytes (called once, in order, while writing). */
  data: () => Uint8Array;
}

const ALIGN = 32;
const VT = { u32: 4, i32: 5, f32: 6, bool: 7, str: 8, arr: 9, u64: 10 } as const;

export function tensorBytes(t: Pick<GgufTensor, 'dims' | 'type'>): number {
  const [be, bb] = BLOCK[t.type];
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (t.dims[0]! % be !== 0) throw new Error(`${t.type}: row length ${t.dims[0]} is not a multiple of ${be}`);
  return (n / be) * bb;
}

class Buf {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void { this.parts.push(b); this.length += b.length; }
  u32(v: number): void { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.push(b); }
  i32(v: number): void { const b = Buffer.alloc(4); b.writeInt32LE(v); this.push(b); }
  u64(v: number): void { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.push(b); }
  f32(v: number): void { const b = Buffer.alloc(4); b.writeFloatLE(v); this.push(b); }
  str(s: string): void { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.push(b); }
  concat(): Buffer { return Buffer.concat(this.parts); }
}

function writeValue(h: Buf, v: GgufValue): void {
  if ('u32' in v) { h.u32(VT.u32); h.u32(v.u32); }
  else if ('i32' in v) { h.u32(VT.i32); h.i32(v.i32); }
  else if ('f32' in v) { h.u32(VT.f32); h.f32(v.f32); }
  else if ('bool' in v) { h.u32(VT.bool); h.push(Buffer.from([v.bool ? 1 : 0])); }
  else if ('str' in v) { h.u32(VT.str); h.str(v.str); }
  else if ('strs' in v) { h.u32(VT.arr); h.u32(VT.str); h.u64(v.strs.length); for (const s of v.strs) h.str(s); }
  else { h.u32(VT.arr); h.u32(VT.f32); h.u64(v.f32s.length); for (const x of v.f32s) h.f32(x); }
}

export function writeGguf(path: string, kv: Record<string, GgufValue>, tensors: GgufTensor[]): number {
  const h = new Buf();
  h.push(Buffer.from('GGUF', 'ascii'));
  h.u32(3);
  h.u64(tensors.length);
  h.u64(Object.keys(kv).length);
  for (const [k, v] of Object.entries(kv)) { h.str(k); writeValue(h, v); }
  let offset = 0;
  const sizes = tensors.map(tensorBytes);
  for (const [i, t] of tensors.entries()) {
    h.str(t.name);
    h.u32(t.dims.length);
    for (const d of t.dims) h.u64(d);
    h.u32(GGML_TYPE[t.type]);
    h.u64(offset);
    offset += Math.ceil(sizes[i]! / ALIGN) * ALIGN;
  }
  const fd = openSync(path, 'w');
  try {
    const head = h.concat();
    writeSync(fd, head);
    let pos = head.length;
    const pad = (to: number) => { if (to > pos) { writeSync(fd, Buffer.alloc(to - pos)); pos = to; } };
    pad(Math.ceil(pos / ALIGN) * ALIGN);
    for (const [i, t] of tensors.entries()) {
      const b = t.data();
      if (b.byteLength !== sizes[i]) throw new Error(`${t.name}: ${b.byteLength} bytes, expected ${sizes[i]} for ${t.type} ${JSON.stringify(t.dims)}`);
      let done = 0;
      while (done < b.byteLength) done += writeSync(fd, b, done, b.byteLength - done);
      pos += b.byteLength;
      pad(Math.ceil(pos / ALIGN) * ALIGN);
    }
    return pos;
  } finally {
    closeSync(fd);
  }
}
