import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import omggif from 'omggif';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import { describe, expect, it } from 'vitest';
import { decodeImage, loadImage, sniffImageFormat, type RgbImage } from '../../src/io/image.js';
import { MediaError } from '../../src/io/media.js';
import { goldenPath } from '../helpers/golden.js';

const FIX = resolve(import.meta.dirname, '../fixtures/image');
const fixture = (name: string) => new Uint8Array(readFileSync(join(FIX, name)));

/** Binary PPM (P6) written by make_fixtures.sh: reference decodes by libjpeg / libwebp. */
function readPpm(name: string): Uint8Array {
  const b = fixture(name);
  let fields = 0, i = 0;
  while (fields < 4) { // "P6", width, height, maxval, each followed by one whitespace byte
    while (b[i] !== 0x20 && b[i] !== 0x0a) i++;
    i++; fields++;
  }
  return b.subarray(i);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function pattern(w: number, h: number, ch: number): Uint8Array {
  const d = new Uint8Array(w * h * ch);
  for (let i = 0; i < d.length; i++) d[i] = (i * 37 + (i >> 5)) & 255;
  return d;
}

function encodePng(w: number, h: number, rgba: Uint8Array, colorType: 0 | 2 | 4 | 6): Uint8Array {
  const p = new PNG({ width: w, height: h });
  p.data.set(rgba);
  return new Uint8Array(PNG.sync.write(p, { colorType }));
}

describe('PNG', () => {
  const w = 7, h = 5, rgba = pattern(w, h, 4);
  // pngjs composites alpha onto white when it writes a type without alpha, so those get opaque input
  const opaque = (src: Uint8Array) => src.map((v, i) => (i % 4 === 3 ? 255 : v));
  const rgbOf = (src: Uint8Array) => Uint8Array.from({ length: w * h * 3 }, (_, i) => src[Math.floor(i / 3) * 4 + (i % 3)]!);

  it('decodes RGB and drops alpha of RGBA without compositing', () => {
    for (const ct of [2, 6] as const) {
      const img = decodeImage(encodePng(w, h, ct === 6 ? rgba : opaque(rgba), ct));
      expect([img.width, img.height]).toEqual([w, h]);
      expect(img.data).toEqual(rgbOf(rgba));
    }
  });
  it('expands gray and gray+alpha to equal channels', () => {
    const gray = rgba.slice();
    for (let i = 0; i < w * h; i++) gray[i * 4 + 1] = gray[i * 4 + 2] = gray[i * 4]!;
    for (const ct of [0, 4] as const) expect(decodeImage(encodePng(w, h, ct === 4 ? gray : opaque(gray), ct)).data).toEqual(rgbOf(gray));
  });
  it('expands palettes (8-bit and 4-bit indexed files made by ImageMagick)', () => {
    const truth = decodeImage(fixture('palette16.png'));
    expect(decodeImage(fixture('palette16_indexed.png')).data).toEqual(truth.data);
    expect(decodeImage(fixture('palette16_4bit.png')).data).toEqual(truth.data);
  });
  it('16-bit: colour keeps the high byte, gray is clipped to 255 (PIL mode "I" → RGB)', () => {
    const p = new PNG({ width: 2, height: 1, bitDepth: 16, colorType: 6, inputColorType: 6 } as never);
    const d16 = new Uint16Array([0x1234, 0xabcd, 0x00ff, 0xffff, 0x0180, 0x7f00, 0xff01, 0xffff]);
    (p as unknown as { data: Uint16Array }).data = d16;
    const rgb16 = decodeImage(new Uint8Array(PNG.sync.write(p, { bitDepth: 16, colorType: 2, inputColorType: 6 } as never)));
    expect(Array.from(rgb16.data)).toEqual([0x12, 0xab, 0x00, 0x01, 0x7f, 0xff]);
    const g = new PNG({ width: 2, height: 1, bitDepth: 16 } as never);
    (g as unknown as { data: Uint16Array }).data = new Uint16Array([200, 200, 200, 0xffff, 300, 300, 300, 0xffff]);
    const gray16 = decodeImage(new Uint8Array(PNG.sync.write(g, { bitDepth: 16, colorType: 0, inputColorType: 6 } as never)));
    expect(Array.from(gray16.data)).toEqual([200, 200, 200, 255, 255, 255]);
  });
});

describe('JPEG', () => {
  // jpeg-js's IDCT differs slightly from libjpeg-turbo's; chroma is re-upsampled the libjpeg way (see image.ts).
  // Measured max |diff| vs libjpeg: 3 levels on these fixtures, so the bound is 3.
  it.each(['gradient_baseline.jpg', 'gradient_progressive.jpg', 'gradient_gray.jpg', 'gradient_cmyk.jpg'])('%s ≈ libjpeg', (name) => {
    const img = decodeImage(fixture(name));
    expect([img.width, img.height]).toEqual([40, 24]);
    expect(maxAbsDiff(img.data, readPpm(`${name}.ref.ppm`))).toBeLessThanOrEqual(3);
  });
  it('golden image C: jpeg-js + libjpeg-style upsampling vs the PIL/libjpeg decode', () => {
    const ours = decodeImage(new Uint8Array(readFileSync(goldenPath('inputs/image_C_700x260.jpg'))));
    const pil = decodeImage(new Uint8Array(readFileSync(goldenPath('inputs/image_C_700x260.decoded.png'))));
    // Measured: max 3, mean 0.14 (plain jpeg-js: max 74, mean 1.3 from replicated chroma). Bound: 3 levels, mean < 0.25.
    expect(maxAbsDiff(ours.data, pil.data)).toBeLessThanOrEqual(3);
    let sum = 0;
    for (let i = 0; i < ours.data.length; i++) sum += Math.abs(ours.data[i]! - pil.data[i]!);
    expect(sum / ours.data.length).toBeLessThan(0.25);
  });
  it('round-trips a jpeg-js encoded 4:2:0 image closely', () => {
    const w = 16, h = 10, rgba = new Uint8Array(w * h * 4).fill(255);
    for (let i = 0; i < w * h; i++) { rgba[i * 4] = i * 3; rgba[i * 4 + 1] = 100; rgba[i * 4 + 2] = 200 - i; }
    const enc = jpeg.encode({ width: w, height: h, data: rgba }, 100);
    const img = decodeImage(new Uint8Array(enc.data));
    const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => rgba[Math.floor(i / 3) * 4 + (i % 3)]!);
    expect(maxAbsDiff(img.data, rgb)).toBeLessThanOrEqual(12); // lossy + subsampled chroma on a steep ramp
  });
});

describe('WebP', () => {
  it('lossless decodes exactly', () => {
    expect(decodeImage(fixture('gradient_lossless.webp')).data).toEqual(decodeImage(fixture('gradient.png')).data);
  });
  it('lossy with alpha equals libwebp (dwebp) and drops alpha', () => {
    expect(maxAbsDiff(decodeImage(fixture('gradient_lossy_alpha.webp')).data, readPpm('gradient_lossy_alpha.webp.ref.ppm'))).toBe(0);
  });
});

describe('GIF', () => {
  it('decodes the first frame; transparent pixels show their palette colour', () => {
    const w = 6, h = 4, palette = [0x000000, 0xff0000, 0x00ff00, 0x0000ff];
    const buf = new Uint8Array(1024);
    const gw = new omggif.GifWriter(buf, w, h, { palette, loop: 0 });
    const f0 = Array.from({ length: w * h }, (_, i) => i % 4);
    gw.addFrame(0, 0, w, h, f0, { transparent: 2, delay: 10 });
    gw.addFrame(0, 0, w, h, f0.map(() => 3), { delay: 10 });
    const img = decodeImage(buf.subarray(0, gw.end()));
    const want = f0.flatMap((k) => [(palette[k]! >> 16) & 255, (palette[k]! >> 8) & 255, palette[k]! & 255]);
    expect(Array.from(img.data)).toEqual(want);
  });
});

describe('errors and sniffing', () => {
  const code = (f: () => unknown) => { try { f(); } catch (e) { expect(e).toBeInstanceOf(MediaError); return (e as MediaError).code + ': ' + (e as Error).message; } return 'no error'; };
  it('sniffs formats from magic bytes', () => {
    expect(sniffImageFormat(fixture('gradient.png'))).toBe('png');
    expect(sniffImageFormat(fixture('gradient_baseline.jpg'))).toBe('jpeg');
    expect(sniffImageFormat(fixture('gradient_lossless.webp'))).toBe('webp');
    expect(sniffImageFormat(new Uint8Array([1, 2, 3]))).toBeNull();
  });
  it('names unsupported formats and corrupt data', () => {
    expect(code(() => decodeImage(new Uint8Array([0x42, 0x4d, 0, 0, 0, 0])))).toMatch(/^unsupported_format: .*BMP/);
    expect(code(() => decodeImage(fixture('gradient.png').subarray(0, 60)))).toMatch(/^decode_failed: .*PNG/);
    expect(code(() => decodeImage(fixture('gradient_baseline.jpg').subarray(0, 200)))).toMatch(/^decode_failed: .*JPEG/);
    expect(code(() => decodeImage(fixture('gradient_lossless.webp').subarray(0, 30)))).toMatch(/^decode_failed: .*WEBP/);
    expect(code(() => decodeImage(new TextEncoder().encode('GIF89a garbage')))).toMatch(/^(decode_failed|too_large): .*GIF/) // the header of this garbage declares 26400×29281;
  });
  it('refuses images over the pixel limit before decoding', () => {
    expect(code(() => decodeImage(fixture('gradient.png'), { maxPixels: 100 }))).toMatch(/^too_large/);
  });
});

describe('loadImage input forms', () => {
  const png = fixture('gradient.png');
  const truth = decodeImage(png);
  const b64 = Buffer.from(png).toString('base64');
  it.each<[string, () => unknown]>([
    ['path', () => join(FIX, 'gradient.png')],
    ['file:// URL', () => 'file://' + join(FIX, 'gradient.png')],
    ['data: URL', () => `data:image/png;base64,${b64}`],
    ['raw base64', () => b64],
    ['Buffer', () => Buffer.from(png)],
    ['ArrayBuffer', () => png.slice().buffer],
  ])('%s', async (_, make) => {
    const img = await loadImage(make() as never);
    expect(img.data).toEqual(truth.data);
  });
  it('accepts decoded RGB and RGBA pixels', async () => {
    const rgb: RgbImage = { width: 2, height: 1, data: new Uint8Array([1, 2, 3, 4, 5, 6]) };
    expect(await loadImage(rgb)).toEqual(rgb);
    const rgba = await loadImage({ width: 2, height: 1, channels: 4, data: new Uint8Array([1, 2, 3, 9, 4, 5, 6, 9]) });
    expect(Array.from(rgba.data)).toEqual([1, 2, 3, 4, 5, 6]);
    await expect(loadImage({ width: 2, height: 2, channels: 3, data: new Uint8Array(5) })).rejects.toThrow(/2×2×3 = 12 bytes/);
  });
});
