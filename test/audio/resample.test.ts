// resample_poly reproduction (golden scipy outputs) and behaviour of the 16 kHz rate rule on real decoded clips.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeAudio } from '../../src/io/audio.js';
import { besselI0, firwinLowpass, kaiserWindow, resamplePoly, resampleRate } from '../../src/io/audio_resample.js';
import { conditionSampleRate } from '../../src/models/phi4mm/audio_processor.js';
import { closeStats, expectClose, golden } from '../helpers/golden.js';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/audio');
const g = () => golden('d_audio_features');
// scipy ran in float64 and the fixtures hold its result rounded to float32; we also compute in float64 and round
// once, so only a last-ulp difference could appear (≤ 3e-8 on |x| < 0.5); 1e-6 leaves margin, measured 0.
const RESAMPLE_TOL = { atol: 1e-6 };

describe('scipy resample_poly reproduction', () => {
  it('resample_poly(wave44, 160, 441) = golden resampled_160_441', () => {
    const x = g().tensor('wave44.samples').data;
    const ref = g().tensor('wave44.resampled_160_441');
    const y = resamplePoly(x, 160, 441);
    expect(y.length).toBe(ref.shape[0]);
    expectClose(y, ref.data, RESAMPLE_TOL, 'resample_poly 160/441');
    expectClose(resampleRate(x, 44100, 16000), ref.data, RESAMPLE_TOL, 'resampleRate 44100→16000 (gcd-reduced)');
  });

  it("the reference rule (resample_poly(x, 1, 2)) = golden resampled_orig_rule, and so does resampleRule 'reference'", () => {
    const x = g().tensor('wave44.samples').data;
    const ref = g().tensor('wave44.resampled_orig_rule');
    expectClose(resamplePoly(x, 1, 2), ref.data, RESAMPLE_TOL, 'resample_poly 1/2');
    const c = conditionSampleRate({ samples: x, sampleRate: 44100 }, { resampleRule: 'reference' });
    expect(c.rate).toBe(16000); // mislabelled 22.05 kHz, as the hub processor does
    expectClose(c.samples, ref.data, RESAMPLE_TOL, 'reference rule');
  });

  it('Kaiser window building blocks', () => {
    // I0 against its integral form (1/π)∫₀^π e^{x cos θ} dθ (midpoint rule, converges fast for a periodic integrand).
    for (const x of [0, 0.5, 2, 5, 12]) {
      let s = 0;
      const steps = 2000;
      for (let k = 0; k < steps; k++) s += Math.exp(x * Math.cos((Math.PI * (k + 0.5)) / steps));
      expect(besselI0(x)).toBeCloseTo(s / steps, 9);
    }
    const w = kaiserWindow(9, 5);
    expect(w[4]).toBe(1); // symmetric window peaks at 1 in the middle…
    for (let i = 0; i < 4; i++) expect(w[i]).toBeCloseTo(w[8 - i]!, 15); // …and is symmetric
    expect(w[0]).toBeCloseTo(1 / besselI0(5), 15); // edge value I0(0)/I0(β)
    const h = firwinLowpass(41, 0.25);
    expect(h.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 14); // DC gain exactly 1 (scale=True)
  });

  it('edge cases: identity, upsampling length, bad arguments', () => {
    const x = new Float32Array([1, 2, 3]);
    expect(Array.from(resamplePoly(x, 3, 3))).toEqual([1, 2, 3]);
    expect(resamplePoly(x, 2, 1).length).toBe(6);
    expect(resamplePoly(new Float32Array(10), 1, 3).length).toBe(4); // ceil(10/3)
    expect(resampleRate(x, 16000, 16000)).toBe(x);
    expect(() => resamplePoly(x, 0, 1)).toThrow(/integers ≥ 1/);
    expect(() => resampleRate(x, 44100.5, 16000)).toThrow(/positive integer/);
  });
});

/** Least-squares amplitude of a sine at f Hz over [a, b) plus the residual RMS after removing it. */
function fitSine(x: Float32Array, fs: number, f: number, a: number, b: number) {
  let ss = 0, sc = 0, cc = 0, xs = 0, xc = 0;
  for (let n = a; n < b; n++) {
    const s = Math.sin((2 * Math.PI * f * n) / fs), c = Math.cos((2 * Math.PI * f * n) / fs);
    ss += s * s; sc += s * c; cc += c * c; xs += x[n]! * s; xc += x[n]! * c;
  }
  const det = ss * cc - sc * sc;
  const A = (xs * cc - xc * sc) / det, B = (xc * ss - xs * sc) / det;
  let r = 0;
  for (let n = a; n < b; n++) r += (x[n]! - A * Math.sin((2 * Math.PI * f * n) / fs) - B * Math.cos((2 * Math.PI * f * n) / fs)) ** 2;
  return { amplitude: Math.hypot(A, B), phase: Math.atan2(B, A), residualRms: Math.sqrt(r / (b - a)) };
}

describe('default rule: decoded clips at 8 / 22.05 / 44.1 / 48 kHz → 16 kHz', () => {
  const cases = [
    { file: 'tone440_8k_f32.wav', rate: 8000, quant: 1e-7 },
    { file: 'tone440_22k05_flac.ogg', rate: 22050, quant: 1 / 32768 },
    { file: 'tone440_44k1_s16.wav', rate: 44100, quant: 1 / 32768 },
    { file: 'tone440_48k_s24.wav', rate: 48000, quant: 1e-6 },
  ];
  for (const c of cases) {
    it(`${c.file}: length ceil(N·16000/fs), 440 Hz sine kept in amplitude and phase`, async () => {
      const a = await decodeAudio(new Uint8Array(readFileSync(join(FIXTURES, c.file))));
      expect(a.sampleRate).toBe(c.rate);
      const y = conditionSampleRate(a).samples;
      expect(y.length).toBe(Math.ceil((a.samples.length * 16000) / c.rate));
      // Interior only: the filter's zero-padded edges fade the first/last ~10 input samples.
      const fit = fitSine(y, 16000, 440, 400, y.length - 400);
      // Kaiser(β=5) passband ripple at 440 Hz is far below 1e-3; the source amplitude is 0.5 and its phase 0
      // (zero-phase filter, output sample 0 at input time 0).
      expect(fit.amplitude).toBeCloseTo(0.5, 3);
      expect(Math.abs(fit.phase)).toBeLessThan(1e-3);
      // Anything left is aliasing/imaging or quantisation: bounded by a few quantisation steps plus the filter's leak.
      expect(fit.residualRms).toBeLessThan(c.quant + 2e-4);
    });
  }

  it('a 10 kHz tone at 44.1 kHz (above the 8 kHz output Nyquist) is removed, a 6 kHz one kept', () => {
    const tone = (f: number) => new Float32Array(44100).map((_, n) => 0.5 * Math.sin((2 * Math.PI * f * n) / 44100));
    const rms = (x: Float32Array) => Math.sqrt(x.subarray(1000, x.length - 1000).reduce((s, v) => s + v * v, 0) / (x.length - 2000));
    const hi = resampleRate(tone(10000), 44100, 16000);
    const lo = resampleRate(tone(6000), 44100, 16000); // the transition band is centred on 8 kHz
    expect(rms(hi) / (0.5 / Math.SQRT2)).toBeLessThan(1e-2); // ≥ 40 dB stopband attenuation
    expect(fitSine(lo, 16000, 6000, 1000, lo.length - 1000).amplitude).toBeCloseTo(0.5, 2);
  });

  it('matches a direct synthesis at 16 kHz for a 48 kHz clip (integer factor 3)', () => {
    const src = new Float32Array(48000).map((_, n) => 0.4 * Math.sin((2 * Math.PI * 1234 * n) / 48000));
    const y = conditionSampleRate({ samples: src, sampleRate: 48000 }).samples;
    const direct = new Float32Array(16000).map((_, n) => 0.4 * Math.sin((2 * Math.PI * 1234 * n) / 16000));
    const s = closeStats(y.subarray(200, 15800), direct.subarray(200, 15800));
    expect(s.maxAbs).toBeLessThan(1e-3); // passband ripple/leak of the 61-tap-per-phase Kaiser filter
  });
});

describe('reference rule on other rates (hub processor behaviour, kept as an option)', () => {
  const x = new Float32Array(22050).map((_, n) => Math.sin(n / 10));
  it('22.05 kHz is not resampled and is treated as 16 kHz', () => {
    const c = conditionSampleRate({ samples: x, sampleRate: 22050 }, { resampleRule: 'reference' });
    expect(c.rate).toBe(16000);
    expect(Array.from(c.samples)).toEqual(Array.from(x)); // resample_poly(x, 1, 1) is a copy
  });
  it('11.025 kHz is treated as 8 kHz and takes the fillzero path by default', () => {
    const c = conditionSampleRate({ samples: x, sampleRate: 11025 }, { resampleRule: 'reference' });
    expect(c.rate).toBe(8000);
    expect(c.samples.length).toBe(x.length);
  });
  it('48 kHz is decimated by 3 (correct for this rate) and equals the default rule', () => {
    const a = conditionSampleRate({ samples: x, sampleRate: 48000 }, { resampleRule: 'reference' }).samples;
    const b = conditionSampleRate({ samples: x, sampleRate: 48000 }).samples;
    expect(Array.from(a)).toEqual(Array.from(b));
  });
});
