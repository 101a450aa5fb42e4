// The page's media format checks agree with the server's decoders, and its WAV encoder round-trips through the
// server's WAV reader (the page converts recordings and unsupported files with it).
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeWav, serverAudioFormat, serverImageFormat, toBase64 } from '../../web/src/formats.js';
import { sniffAudioFormat } from '../../src/io/audio.js';
import { decodeWav } from '../../src/io/audio_wav.js';
import { sniffImageFormat } from '../../src/io/image.js';
import { ROOT } from '../helpers/golden.js';

const dir = (d: string) => join(ROOT, 'test/fixtures', d);
const PCM16_STEP = 1 / 0x7fff;

describe('web UI media formats', () => {
  it('sends as-is exactly the audio the server decodes, and converts the rest', () => {
    const files = readdirSync(dir('audio')).filter((f) => !f.endsWith('.md'));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const b = new Uint8Array(readFileSync(join(dir('audio'), f)));
      expect(serverAudioFormat(b) !== null, f).toBe(sniffAudioFormat(b) !== undefined);
    }
    const webm = new Uint8Array([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81]); // MediaRecorder's WebM header
    expect(serverAudioFormat(webm)).toBeNull();
    expect(sniffAudioFormat(webm)).toBeUndefined();
    const m4a = new Uint8Array([0, 0, 0, 0x20, ...new TextEncoder().encode('ftypM4A ')]);
    expect(serverAudioFormat(m4a)).toBeNull();
  });

  it('sends as-is exactly the images the server decodes', () => {
    for (const f of readdirSync(dir('image')).filter((n) => /\.(png|jpg|webp|gif)$/.test(n))) {
      const b = new Uint8Array(readFileSync(join(dir('image'), f)));
      expect(serverImageFormat(b), f).toBe(sniffImageFormat(b));
    }
    expect(serverImageFormat(new TextEncoder().encode('BM\x00\x00'))).toBeNull(); // BMP: converted to PNG in the page
  });

  it('encodes 16-bit PCM WAV that the server reads back within half a step, clipping out-of-range samples', () => {
    const n = 1001, rate = 16000;
    const x = new Float32Array(n);
    for (let k = 0; k < n; k++) x[k] = 1.3 * Math.sin((2 * Math.PI * 440 * k) / rate);
    const wav = encodeWav(x, rate);
    expect(serverAudioFormat(wav)).toBe('wav');
    const back = decodeWav(wav);
    expect(back.sampleRate).toBe(rate);
    expect(back.channels.length).toBe(1);
    expect(back.channels[0]!.length).toBe(n);
    let worst = 0;
    for (let k = 0; k < n; k++) worst = Math.max(worst, Math.abs(back.channels[0]![k]! - Math.max(-1, Math.min(1, x[k]!))));
    // Rounding to the nearest of 2^15 levels is off by ≤ half a step; the reader may scale by 1/32768 (≤ 1 step more at ±1).
    expect(worst).toBeLessThanOrEqual(1.5 * PCM16_STEP);
    expect(() => encodeWav(x, 0)).toThrow(/sample rate/);
  });

  it('base64-encodes large buffers (chunked) like Buffer does', () => {
    const b = new Uint8Array(100_003);
    for (let k = 0; k < b.length; k++) b[k] = (k * 7919) & 0xff;
    expect(toBase64(b)).toBe(Buffer.from(b).toString('base64'));
  });
});
