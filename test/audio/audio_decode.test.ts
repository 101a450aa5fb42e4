// Decoding of the committed fixtures (test/fixtures/audio/README.md says how they were made) against the synthetic
// source signals, stereo → mono mixing, every loadAudio input form, and error reporting.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeAudio, decodeAudioChannels, loadAudio, mixToMono, sniffAudioFormat, type AudioFormat } from '../../src/io/audio.js';
import { MediaError } from '../../src/io/media.js';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/audio');
const read = (f: string) => new Uint8Array(readFileSync(join(FIXTURES, f)));
const CLIP_SECONDS = 0.5;

/** The README's source: channel 0 = 0.5·sin(2π·440·n/fs), channel 1 = 0.25·sin(2π·1000·n/fs). */
const source = (ch: number, n: number, fs: number) =>
  ch === 0 ? 0.5 * Math.sin((2 * Math.PI * 440 * n) / fs) : 0.25 * Math.sin((2 * Math.PI * 1000 * n) / fs);

function maxAbsError(x: Float32Array, ch: number, fs: number): number {
  let m = 0;
  for (let n = 0; n < x.length; n++) m = Math.max(m, Math.abs(x[n]! - source(ch, n, fs)));
  return m;
}

/** SNR in dB against the source over the middle of the clip (codec start-up and end effects excluded). */
function snrDb(x: Float32Array, ch: number, fs: number): number {
  let sig = 0, err = 0;
  for (let n = Math.round(0.1 * fs); n < Math.round(0.4 * fs); n++) {
    const s = source(ch, n, fs);
    sig += s * s;
    err += (x[n]! - s) ** 2;
  }
  return 10 * Math.log10(sig / err);
}

interface Case { file: string; format: AudioFormat; rate: number; channels: number; seconds?: number }

// Lossless: the only error is the storage quantisation, so the bound is half a quantisation step (+ float32 rounding
// of the decoded value, ≤ 2^-25 for |x| ≤ 0.5).
const F32_ROUND = 2 ** -25;
const LOSSLESS: Array<Case & { tol: number; why: string }> = [
  { file: 'tone440_16k_s16.wav', format: 'wav', rate: 16000, channels: 1, tol: 0.5 / 32768, why: 'int16 rounding' },
  { file: 'tone440_44k1_s16.wav', format: 'wav', rate: 44100, channels: 1, seconds: 0.25, tol: 0.5 / 32768, why: 'int16 rounding' },
  { file: 'tone440_22k05_u8.wav', format: 'wav', rate: 22050, channels: 1, tol: 0.5 / 128, why: 'uint8 rounding' },
  // ffmpeg reaches s24 through s32 and drops the low byte (truncation), so a whole 24-bit step.
  { file: 'tone440_48k_s24.wav', format: 'wav', rate: 48000, channels: 1, seconds: 0.25, tol: 1 / 2 ** 23 + F32_ROUND, why: 'int24 truncation' },
  { file: 'tone440_16k_s32.wav', format: 'wav', rate: 16000, channels: 1, tol: 0.5 / 2 ** 31 + F32_ROUND, why: 'int32 + float32' },
  { file: 'tone440_8k_f32.wav', format: 'wav', rate: 8000, channels: 1, tol: F32_ROUND, why: 'float32' },
  { file: 'tone440_8k_f64.wav', format: 'wav', rate: 8000, channels: 1, tol: F32_ROUND, why: 'float64 → float32' },
  // G.711 uses steps up to 1024/32768 for |x| ≤ 0.5 → error ≤ half of that.
  { file: 'tone440_8k_alaw.wav', format: 'wav', rate: 8000, channels: 1, tol: 512 / 32768, why: 'A-law step' },
  { file: 'tone440_8k_mulaw.wav', format: 'wav', rate: 8000, channels: 1, tol: 512 / 32768, why: 'µ-law step' },
  { file: 'tone440_8k_s16_rifx.wav', format: 'wav', rate: 8000, channels: 1, tol: 0.5 / 32768, why: 'int16 rounding (sox -D: no dither)' },
  { file: 'stereo_16k_s16.wav', format: 'wav', rate: 16000, channels: 2, tol: 0.5 / 32768, why: 'int16 rounding' },
  { file: 'tone440_44k1.flac', format: 'flac', rate: 44100, channels: 1, tol: 0.5 / 32768, why: 'FLAC of int16' },
  { file: 'stereo_44k1.flac', format: 'flac', rate: 44100, channels: 2, tol: 0.5 / 32768, why: 'FLAC of int16' },
  { file: 'tone440_22k05_flac.ogg', format: 'ogg-flac', rate: 22050, channels: 1, tol: 0.5 / 32768, why: 'FLAC of int16' },
];

// Lossy: compare by SNR at zero lag (the decoders remove encoder delay/padding, which the exact lengths confirm).
// Thresholds sit ~6 dB under what these encodes measure (MP3 26 dB — the same with ffmpeg's decoder, LAME at
// 128 kb/s on a pure tone —, Vorbis 41 dB, Opus 48 dB): a broken decoder, lost alignment or channel mix-up gives < 3 dB.
const LOSSY: Array<Case & { minSnrDb: number }> = [
  { file: 'tone440_44k1.mp3', format: 'mp3', rate: 44100, channels: 1, minSnrDb: 20 },
  { file: 'stereo_44k1_vorbis.ogg', format: 'ogg-vorbis', rate: 44100, channels: 2, minSnrDb: 35 },
  { file: 'tone440_48k.opus', format: 'ogg-opus', rate: 48000, channels: 1, minSnrDb: 40 },
  { file: 'stereo_48k.opus', format: 'ogg-opus', rate: 48000, channels: 2, minSnrDb: 35 },
];

describe('lossless decoding', () => {
  for (const c of LOSSLESS) {
    it(`${c.file}: within ${c.why}`, async () => {
      const bytes = read(c.file);
      expect(sniffAudioFormat(bytes)).toBe(c.format);
      const d = await decodeAudioChannels(bytes);
      expect(d.sampleRate).toBe(c.rate);
      expect(d.channels.length).toBe(c.channels);
      for (let ch = 0; ch < c.channels; ch++) {
        expect(d.channels[ch]!.length).toBe(Math.round((c.seconds ?? CLIP_SECONDS) * c.rate));
        expect(maxAbsError(d.channels[ch]!, ch, c.rate), `channel ${ch}`).toBeLessThanOrEqual(c.tol);
      }
    });
  }
});

describe('FLAC scaling', () => {
  it('FLAC of int16 decodes bit-identically to the int16 WAV of the same source (int/32768, as soundfile)', async () => {
    const flac = (await decodeAudio(read('tone440_44k1.flac'))).samples;
    const wav = (await decodeAudio(read('tone440_44k1_s16.wav'))).samples; // first 0.25 s of the same signal
    expect(Array.from(flac.subarray(0, wav.length))).toEqual(Array.from(wav));
  });
});

describe('lossy decoding (WASM decoders)', () => {
  for (const c of LOSSY) {
    it(`${c.file}: exact length, SNR ≥ ${c.minSnrDb} dB`, async () => {
      const bytes = read(c.file);
      expect(sniffAudioFormat(bytes)).toBe(c.format);
      const d = await decodeAudioChannels(bytes);
      expect(d.sampleRate).toBe(c.rate);
      // mpg123 always outputs two channels; a mono MP3 gives two equal ones.
      if (c.format !== 'mp3') expect(d.channels.length).toBe(c.channels);
      for (let ch = 0; ch < c.channels; ch++) {
        expect(d.channels[ch]!.length).toBe(CLIP_SECONDS * c.rate);
        expect(snrDb(d.channels[ch]!, ch, c.rate), `channel ${ch}`).toBeGreaterThan(c.minSnrDb);
      }
    });
  }
});

describe('stereo → mono', () => {
  it('decodeAudio averages the channels of a stereo WAV', async () => {
    const a = await decodeAudio(read('stereo_16k_s16.wav'));
    let m = 0;
    for (let n = 0; n < a.samples.length; n++) m = Math.max(m, Math.abs(a.samples[n]! - (source(0, n, 16000) + source(1, n, 16000)) / 2));
    expect(a.samples.length).toBe(8000);
    expect(m).toBeLessThanOrEqual(0.5 / 32768); // mean of two values each within half an int16 step
  });

  it('mixToMono is the float64 mean rounded to float32, and needs equal lengths', () => {
    const l = new Float32Array([0.1, -1, 0.3]), r = new Float32Array([0.2, 1, 0.35]), c = new Float32Array([0, 0.5, 0.05]);
    expect(Array.from(mixToMono([l, r, c]))).toEqual([0, 1, 2].map((i) => Math.fround((l[i]! + r[i]! + c[i]!) / 3)));
    expect(mixToMono([l])).toBe(l);
    expect(() => mixToMono([l, new Float32Array(2)])).toThrow(/different lengths/);
  });
});

describe('loadAudio input forms', () => {
  const file = 'tone440_16k_s16.wav';
  const path = join(FIXTURES, file);
  const bytes = read(file);
  const b64 = Buffer.from(bytes).toString('base64');
  const forms: Array<[string, Parameters<typeof loadAudio>[0]]> = [
    ['path', path],
    ['file:// URL', pathToFileURL(path).href],
    ['data: URL', `data:audio/wav;base64,${b64}`],
    ['raw base64', b64],
    ['Buffer', readFileSync(path)],
    ['ArrayBuffer', bytes.slice().buffer],
  ];
  for (const [name, src] of forms) {
    it(name, async () => {
      const a = await loadAudio(src);
      expect(a.sampleRate).toBe(16000);
      expect(a.samples.length).toBe(8000);
      expect(maxAbsError(a.samples, 0, 16000)).toBeLessThanOrEqual(0.5 / 32768);
    });
  }

  it('decoded samples and channels with a rate', async () => {
    const s = new Float32Array([0.25, -0.5, 1]);
    expect((await loadAudio({ samples: s, sampleRate: 22050 })).samples).toBe(s);
    const m = await loadAudio({ channels: [s, new Float32Array([0.75, 0.5, 0])], sampleRate: 8000 });
    expect(Array.from(m.samples)).toEqual([0.5, 0, 0.5]);
    expect(m.sampleRate).toBe(8000);
    await expect(loadAudio({ samples: s, sampleRate: 0 })).rejects.toThrow(/sampleRate/);
    await expect(loadAudio({ samples: [1, 2] as unknown as Float32Array, sampleRate: 16000 })).rejects.toThrow(/Float32Array/);
  });
});

describe('bad input', () => {
  const codeOf = async (p: Promise<unknown>) => {
    try { await p; } catch (e) { expect(e).toBeInstanceOf(MediaError); return [(e as MediaError).code, (e as Error).message]; }
    throw new Error('expected a MediaError');
  };

  it('unknown bytes and known-but-unsupported containers', async () => {
    expect((await codeOf(decodeAudio(new Uint8Array(64).fill(7))))[0]).toBe('unsupported_format');
    const m4a = new Uint8Array(64); m4a.set(Buffer.from('ftypM4A '), 4);
    const [code, msg] = await codeOf(decodeAudio(m4a));
    expect(code).toBe('unsupported_format');
    expect(msg).toMatch(/MP4\/M4A/);
  });

  it('corrupt or truncated files name the format', async () => {
    const wav = read('tone440_16k_s16.wav');
    expect(await codeOf(decodeAudio(wav.slice(0, 30)))).toEqual(['decode_failed', expect.stringMatching(/^WAV: .*fmt/)]);
    const noData = wav.slice(0, 44); noData.set(Buffer.from('junk'), 36);
    expect((await codeOf(decodeAudio(noData)))[1]).toMatch(/WAV: no data chunk/);
    const adpcm = wav.slice(); adpcm[20] = 2; // WAVE_FORMAT_ADPCM
    expect(await codeOf(decodeAudio(adpcm))).toEqual(['unsupported_format', expect.stringMatching(/WAV: unsupported sample encoding/)]);
    for (const [file, name] of [['tone440_44k1.flac', 'flac'], ['tone440_44k1.mp3', 'mp3'], ['stereo_44k1_vorbis.ogg', 'ogg-vorbis'], ['tone440_48k.opus', 'ogg-opus']]) {
      const head = read(file!).slice(0, 120); // headers only, no audio frames
      const [c, message] = await codeOf(decodeAudio(head));
      expect(c, file).toBe('decode_failed');
      expect(message, file).toContain(name);
    }
  });

  it('a truncated WAV keeps the complete sample frames', async () => {
    const wav = read('tone440_16k_s16.wav');
    const dataAt = Buffer.from(wav).indexOf('data') + 8;
    const a = await decodeAudio(wav.slice(0, dataAt + 2 * 1000 + 1)); // 1000 samples and half of the next
    expect(a.samples.length).toBe(1000);
    expect(maxAbsError(a.samples, 0, 16000)).toBeLessThanOrEqual(0.5 / 32768);
  });

  it('a missing path is reported by the media loader', async () => {
    await expect(loadAudio(join(FIXTURES, 'no_such_file.wav'))).rejects.toBeInstanceOf(MediaError);
  });
});
