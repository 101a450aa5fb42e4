// Hand-made hostile media for the adversarial corpus: header-only "bombs" and malformed containers, plus a
// seeded byte-level mutator for fuzzing valid files.
import { deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import omggif from 'omggif';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
function crc32(b: Uint8Array): number { let c = 0xffffffff; for (const x of b) c = CRC_TABLE[(c ^ x) & 255]! ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; }

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8); head.writeUInt32BE(data.length, 0); head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A PNG whose IHDR declares w×h; its IDAT holds deflated zeros for only the first rows. */
export function pngBomb(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.alloc(1 << 20))), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A real w×h RGB PNG (for aspect-ratio cases). */
export function png(w: number, h: number): Buffer {
  const p = new PNG({ width: w, height: h });
  p.data.fill(128);
  return PNG.sync.write(p);
}

/** 35 bytes: GIF screen and frame both w×h. */
export function gifBomb(w: number, h: number): Buffer {
  const b = Buffer.from('GIF89a\0\0\0\0\0\0\0,\0\0\0\0\0\0\0\0\0\x02\x02\x4c\x01\0;', 'latin1');
  b.writeUInt16LE(w, 6); b.writeUInt16LE(h, 8); b.writeUInt16LE(w, 18); b.writeUInt16LE(h, 20);
  return b;
}

export function gif(w: number, h: number): Buffer {
  const buf = Buffer.alloc(1024 + w * h * 2);
  const palette = [0x000000, 0xff0000, 0x00ff00, 0x0000ff];
  const gw = new omggif.GifWriter(buf, w, h, { palette });
  gw.addFrame(0, 0, w, h, Array.from({ length: w * h }, (_, i) => i % 4));
  return buf.subarray(0, gw.end());
}

/** 30 bytes: a VP8X WebP canvas of w×h. */
export function webpBomb(w: number, h: number): Buffer {
  const b = Buffer.alloc(30);
  b.write('RIFF', 0, 'latin1'); b.writeUInt32LE(22, 4); b.write('WEBPVP8X', 8, 'latin1'); b.writeUInt32LE(10, 16);
  b.writeUIntLE(w - 1, 24, 3); b.writeUIntLE(h - 1, 27, 3);
  return b;
}

/** SOI + a baseline SOF0 of w×h + EOI. */
export function jpegBomb(w: number, h: number): Buffer {
  const sof = Buffer.from([0xff, 0xc0, 0, 17, 8, h >> 8, h & 255, w >> 8, w & 255, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), sof, Buffer.from([0xff, 0xd9])]);
}

export interface WavSpec { rate: number; channels?: number; bits?: 8 | 16 | 32; float?: boolean; frames: number; fill?: (i: number) => number }

export function wav(s: WavSpec): Buffer {
  const ch = s.channels ?? 1, bits = s.float ? 32 : (s.bits ?? 16), bytes = bits / 8, align = ch * bytes;
  const data = Buffer.alloc(s.frames * align);
  for (let i = 0; i < s.frames * ch; i++) {
    const v = s.fill ? s.fill(i) : 0;
    if (s.float) data.writeFloatLE(v, i * 4);
    else if (bits === 16) data.writeInt16LE(Math.round(v * 32767), i * 2);
    else if (bits === 8) data[i] = 128 + Math.round(v * 127);
    else data.writeInt32LE(Math.round(v * 2147483647), i * 4);
  }
  const fmt = Buffer.alloc(24);
  fmt.write('fmt ', 0, 'latin1'); fmt.writeUInt32LE(16, 4); fmt.writeUInt16LE(s.float ? 3 : 1, 8); fmt.writeUInt16LE(ch, 10);
  fmt.writeUInt32LE(s.rate >>> 0, 12); fmt.writeUInt32LE((s.rate * align) >>> 0, 16); fmt.writeUInt16LE(align, 20); fmt.writeUInt16LE(bits, 22);
  const head = Buffer.alloc(20);
  head.write('RIFF', 0, 'latin1'); head.writeUInt32LE(36 + data.length, 4); head.write('WAVE', 8, 'latin1'); head.write('data', 12, 'latin1'); head.writeUInt32LE(data.length, 16);
  return Buffer.concat([head.subarray(0, 12), fmt, head.subarray(12), data]);
}

/** RF64 whose ds64 chunk claims 28 bytes but the file ends inside it. */
export function rf64TruncatedDs64(): Buffer {
  const b = Buffer.alloc(30);
  b.write('RF64', 0, 'latin1'); b.writeUInt32LE(0xffffffff, 4); b.write('WAVE', 8, 'latin1'); b.write('ds64', 12, 'latin1'); b.writeUInt32LE(28, 16);
  return b;
}

/** mulberry32: a small seeded PRNG. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

/** One random mutation: flipped bytes, header overwrite, truncation, inserted junk, or a duplicated slice. */
export function mutate(src: Buffer, r: () => number): { bytes: Buffer; how: string } {
  const b = Buffer.from(src);
  const at = (n: number) => Math.floor(r() * n);
  switch (at(5)) {
    case 0: { const n = 1 + at(8); for (let i = 0; i < n; i++) b[at(b.length)] = at(256); return { bytes: b, how: `flip ${n}` }; }
    case 1: { const n = 1 + at(6); for (let i = 0; i < n; i++) b[at(Math.min(64, b.length))] = at(2) ? 0xff : at(256); return { bytes: b, how: `header ${n}` }; }
    case 2: { const len = at(b.length); return { bytes: b.subarray(0, len), how: `truncate ${len}` }; }
    case 3: { const p = at(b.length), junk = Buffer.from(Array.from({ length: 1 + at(32) }, () => at(256))); return { bytes: Buffer.concat([b.subarray(0, p), junk, b.subarray(p)]), how: `insert ${junk.length}@${p}` }; }
    default: { const p = at(b.length), n = at(Math.min(4096, b.length - p)); return { bytes: Buffer.concat([b.subarray(0, p + n), b.subarray(p)]), how: `dup ${n}@${p}` }; }
  }
}
