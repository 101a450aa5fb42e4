// Log-mel front end and batching against the reference processor's outputs (golden d_audio_features, spec JSONs).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeAudio, loadAudio } from '../../src/io/audio.js';
import {
  audioTokenCount, computeNumAudioTokens, extractAudioFeatures, N_MELS, speechlibMelFilterbank,
} from '../../src/models/phi4mm/audio_processor.js';
import { closeStats, expectClose, golden, goldenPath, specJson } from '../helpers/golden.js';

const g = () => golden('d_audio_features');
// Golden README §10 allows atol 1e-3 (float32 vs float64 of this chain: 2.9e-4 on values up to ~30). Our chain copies
// the reference's float32 roundings (frames, complex64, |S|, |S|², log) and only sums FFT/mel in float64: measured
// max diff 1.9e-6 (1 ulp at 16–32) on every golden clip, so 1e-4 keeps a wide margin and still catches real slips.
const LOGMEL_TOL = { atol: 1e-4 };

const audio16k = (samples: Float32Array) => ({ samples, sampleRate: 16000 });

describe('mel filterbank', () => {
  const w = speechlibMelFilterbank(); // [80, 257]
  it('equals the reference speechlib filters (golden [257, 80])', () => {
    const ref = g().tensor('mel_filters_speechlib');
    expect(ref.shape).toEqual([257, 80]);
    const transposed = new Float32Array(257 * 80);
    for (let m = 0; m < 80; m++) for (let k = 0; k < 257; k++) transposed[k * 80 + m] = w[m * 257 + k]!;
    // Same float64 formula rounded to float32 once; only a last-ulp difference of ln() could show (≤ 6e-8 on ≤ 1).
    expectClose(transposed, ref.data, { atol: 1e-7 }, 'mel_filters_speechlib');
    const nonzero = transposed.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0);
    expect(nonzero).toBe(g().json.mel_filters_new_vs_speechlib.nonzero_speechlib);
  });

  it('equals the sparse rows of spec mel_filterbank_80x257.json, and differs from the v4.57.6 bank as documented', () => {
    const spec = specJson('mel_filterbank_80x257.json');
    const dense = new Float32Array(80 * 257);
    for (const r of spec.rows) (r.weights as number[]).forEach((v, j) => { dense[r.mel * 257 + r.start_bin + j] = v; });
    expectClose(w, dense, { atol: 1e-7 }, 'spec filterbank'); // float32 values written as decimals
    // Documentation only: the newer transformers bank is *not* what the reference used (max diff 0.0097, bin 246).
    const other = g().tensor('mel_filters_v4.57.6_audio_utils');
    const ours = new Float32Array(257 * 80);
    for (let m = 0; m < 80; m++) for (let k = 0; k < 257; k++) ours[k * 80 + m] = w[m * 257 + k]!;
    expect(closeStats(ours, other.data).maxAbs).toBeCloseTo(g().json.mel_filters_new_vs_speechlib.max_abs, 5);
  });
});

describe('log-mel features (16 kHz)', () => {
  it('wave16: features [1,328,80], 41 tokens, no mask', () => {
    const wav = g().tensor('wave16.samples').data;
    const out = extractAudioFeatures([audio16k(wav)]);
    const ref = g().tensor('wave16.audio_input_features');
    expect([1, out.maxFrames, N_MELS]).toEqual(ref.shape);
    expectClose(out.features, ref.data, LOGMEL_TOL, 'wave16 features');
    expect(out.embedSizes).toEqual(Array.from(g().tensor('wave16.audio_embed_sizes').data));
    expect(out.attentionMask).toBeUndefined();
  });

  it('batch of 3.3 s + 2.0 s: zero-padded features, sizes and mask', () => {
    const a = g().tensor('wave16.samples').data;
    const b = g().tensor('wave16short.samples').data;
    const out = extractAudioFeatures([audio16k(a), audio16k(b)]);
    const ref = g().tensor('batch.audio_input_features');
    expect([2, out.maxFrames, N_MELS]).toEqual(ref.shape);
    expect(out.frames[1]).toBe(g().json.batch.short_alone_frames);
    expectClose(out.features, ref.data, LOGMEL_TOL, 'batch features');
    expect(out.embedSizes).toEqual(g().json.batch.audio_embed_sizes);
    expect(Array.from(out.attentionMask!)).toEqual(Array.from(g().raw('batch.audio_attention_mask')));
  });

  it('spec golden_logmel_sine.json (0.5 s two-tone)', () => {
    const spec = specJson('golden_logmel_sine.json');
    const x = new Float32Array(8000);
    for (let n = 0; n < x.length; n++) x[n] = 0.3 * Math.sin((2 * Math.PI * 440 * n) / 16000) + 0.2 * Math.sin((2 * Math.PI * 1000 * n) / 16000);
    const out = extractAudioFeatures([audio16k(x)]);
    expect(out.maxFrames).toBe(spec.num_frames);
    expect(out.embedSizes).toEqual([spec.audio_embed_size]);
    for (const [t, row] of Object.entries(spec.frames_0_1_2_and_last as Record<string, number[]>)) {
      expectClose(out.features.subarray(Number(t) * 80, Number(t) * 80 + 80), row, LOGMEL_TOL, `sine frame ${t}`);
    }
    const sum = out.features.reduce((s, v) => s + v, 0);
    // 3840 values each within 1e-3 → the mean within 1e-3 too.
    expect(Math.abs(sum / out.features.length - spec.mean_all)).toBeLessThan(1e-3);
  });

  it('the golden input WAV decodes to exactly wave16.samples', async () => {
    const a = await decodeAudio(new Uint8Array(readFileSync(goldenPath('inputs', 'audio_16k_3.3s.wav'))));
    expect(a.sampleRate).toBe(16000);
    expect(closeStats(a.samples, g().tensor('wave16.samples').data).maxAbs).toBe(0);
    const b = await decodeAudio(new Uint8Array(readFileSync(goldenPath('inputs', 'audio_16k_2.0s.wav'))));
    expect(closeStats(b.samples, g().tensor('wave16short.samples').data).maxAbs).toBe(0);
  });
});

describe('long clip (golden h_audio_long)', () => {
  it('42 s WAV file → load → features [1,4198,80], 525 tokens', async () => {
    const h = golden('h_audio_long');
    const a = await loadAudio(goldenPath('inputs', 'audio_16k_42s.wav'));
    const out = extractAudioFeatures([a]);
    const ref = h.tensor('audio_input_features');
    expect([1, out.maxFrames, 80]).toEqual(ref.shape);
    expectClose(out.features, ref.data, LOGMEL_TOL, 'h_audio_long features');
    expect(out.embedSizes).toEqual(Array.from(h.tensor('audio_embed_sizes').data));
  });
});

describe('44.1 kHz input', () => {
  it('default (exact) rule: resample_poly(160, 441) features, 41 tokens', () => {
    const x = g().tensor('wave44.samples').data;
    const out = extractAudioFeatures([{ samples: x, sampleRate: 44100 }]);
    const ref = g().tensor('wave44.resampled_160_441.audio_input_features');
    expect([1, out.maxFrames, 80]).toEqual(ref.shape);
    expectClose(out.features, ref.data, LOGMEL_TOL, 'wave44 exact');
    expect(out.embedSizes).toEqual(g().json.wave44.proper_embed_sizes);
  });

  it("resampleRule 'reference': decimate by 2 and treat as 16 kHz, 57 tokens", () => {
    const x = g().tensor('wave44.samples').data;
    const out = extractAudioFeatures([{ samples: x, sampleRate: 44100 }], { resampleRule: 'reference' });
    const ref = g().tensor('wave44.resampled_orig_rule.audio_input_features');
    expect([1, out.maxFrames, 80]).toEqual(ref.shape);
    expectClose(out.features, ref.data, LOGMEL_TOL, 'wave44 reference rule');
    expect(out.embedSizes).toEqual(g().json.wave44.orig_rule_embed_sizes);
  });

  it('the golden 44.1 kHz WAV decodes to wave44.samples', async () => {
    const a = await decodeAudio(new Uint8Array(readFileSync(goldenPath('inputs', 'audio_44k1_3.3s.wav'))));
    expect(a.sampleRate).toBe(44100);
    expect(closeStats(a.samples, g().tensor('wave44.samples').data).maxAbs).toBe(0);
  });
});

describe('token counts', () => {
  it('audio_token_examples.json rows: feature shape and token count from synthetic clips of the given length/rate', async () => {
    for (const row of specJson('audio_token_examples.json').rows) {
      // "original_path" rows document the hub processor's rate rule; the others the correct one.
      const resampleRule = String(row.case).includes('original_path') ? 'reference' as const : 'exact' as const;
      const tone = () => new Float32Array(row.samples).map((_, i) => 0.3 * Math.sin((2 * Math.PI * 440 * i) / row.fs));
      const stereo = String(row.case).includes('stereo');
      const audio = await loadAudio(stereo ? { channels: [tone(), tone()], sampleRate: row.fs } : { samples: tone(), sampleRate: row.fs });
      const out = extractAudioFeatures([audio], { resampleRule });
      expect([1, out.maxFrames, 80], row.case).toEqual(row.feature_shape);
      expect(out.embedSizes, row.case).toEqual([row.audio_embed_size]);
      expect(audioTokenCount(row.samples, row.fs, { resampleRule }), row.case).toBe(row.audio_embed_size);
      if (row.fs === 16000) expect(computeNumAudioTokens(row.samples), row.case).toBe(row.audio_embed_size);
    }
  });

  it('audioTokenCount at native rates under both rules', () => {
    const rows = specJson('audio_token_examples.json').rows as any[];
    const size = (c: string) => rows.find((r) => r.case === c).audio_embed_size;
    expect(audioTokenCount(441000, 44100)).toBe(size('10s@44.1k_resampled_to_16k_first'));
    expect(audioTokenCount(441000, 44100, { resampleRule: 'reference' })).toBe(size('10s@44.1k_original_path'));
    expect(audioTokenCount(480000, 48000)).toBe(size('10s@48k'));
    expect(audioTokenCount(22050, 22050, { resampleRule: 'reference' })).toBe(size('1s@22.05k_original_path'));
    expect(audioTokenCount(11025, 11025, { resampleRule: 'reference' })).toBe(size('1s@11.025k_original_path'));
    expect(audioTokenCount(26400, 8000)).toBe(size('3.3s@8k'));
    expect(audioTokenCount(26400, 8000, { resampleRule: 'reference' })).toBe(size('3.3s@8k'));
  });

  it('audioTokenCount agrees with the features actually extracted', () => {
    for (const [n, fs] of [[16000, 44100], [12345, 22050], [8000, 8000], [30000, 48000], [5000, 11025]] as const) {
      const samples = new Float32Array(n).map((_, i) => 0.1 * Math.sin(i / 3));
      for (const resampleRule of ['exact', 'reference'] as const) {
        const out = extractAudioFeatures([{ samples, sampleRate: fs }], { resampleRule });
        expect(out.embedSizes[0], `${n}@${fs} ${resampleRule}`).toBe(audioTokenCount(n, fs, { resampleRule }));
      }
    }
  });
});

describe('8 kHz paths and errors', () => {
  it("fillzero keeps the 16 kHz frame count; its features differ from 'resample' but agree roughly in shape", () => {
    const x = new Float32Array(26400);
    for (let n = 0; n < x.length; n++) x[n] = 0.3 * Math.sin((2 * Math.PI * 440 * n) / 8000);
    const fz = extractAudioFeatures([{ samples: x, sampleRate: 8000 }], { eightKMethod: 'fillzero' });
    const rs = extractAudioFeatures([{ samples: x, sampleRate: 8000 }]);
    expect(fz.maxFrames).toBe(328);
    expect(rs.maxFrames).toBe(328);
    // Zero-filled spectrum above 4 kHz → the upper mel bins sit exactly at the log floor ln(1) = 0.
    expect(fz.features[100 * 80 + 79]).toBe(0);
    // The 440 Hz peak lands in the same mel bin on both paths.
    const argmax = (f: Float32Array, t: number) => f.subarray(t * 80, t * 80 + 80).reduce((b, v, i, a) => (v > a[b]! ? i : b), 0);
    expect(argmax(fz.features, 100)).toBe(argmax(rs.features, 100));
  });

  it('rejects too-short, empty, non-finite and sub-8 kHz (reference) input with clear errors', () => {
    expect(() => extractAudioFeatures([audio16k(new Float32Array(399))])).toThrow(/too short.*399 samples/);
    expect(extractAudioFeatures([audio16k(new Float32Array(400))]).maxFrames).toBe(1);
    expect(() => extractAudioFeatures([])).toThrow(/no audio/);
    expect(() => extractAudioFeatures([audio16k(new Float32Array([0, NaN, ...new Float32Array(500)]))])).toThrow(/sample 1 is NaN/);
    expect(() => extractAudioFeatures([{ samples: new Float32Array(8000), sampleRate: 6000 }], { resampleRule: 'reference' })).toThrow(/below 8000/);
    expect(() => extractAudioFeatures([{ samples: new Float32Array(8000), sampleRate: 44100.5 }])).toThrow(/positive integer/);
  });
});
