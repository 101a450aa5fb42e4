// Phi-4-multimodal audio front end: sample-rate conditioning and the speechlib log-mel features
// (reference: processing_phi4mm.py Phi4MMAudioFeatureExtractor / transformers v4.51.3
// Phi4MultimodalFeatureExtractor; SPEC §4). Output features feed the conformer encoder, whose first layer does
// the global mean/variance normalisation, so no normalisation happens here.
import FFT from 'fft.js';
import type { AudioData } from '../../io/audio.js';
import { resamplePoly, resampleRate } from '../../io/audio_resample.js';

export const MODEL_SAMPLE_RATE = 16000;
const EIGHT_K_RATE = 8000;
export const N_MELS = 80;
const MEL_FMIN_HZ = 0;
/** speechlib_mel upper edge (not Nyquist: the reference's filters stop at 7690 Hz). */
const MEL_FMAX_HZ = 7690;
const PREEMPHASIS = Math.fround(0.97); // a float32 scalar times a float32 frame, as numpy/torch compute it
const INT16_SCALE = 32768;
/** audio_compression_rate 8 (conformer time reduction) × audio_downsample_rate 1. */
const FRAMES_PER_TOKEN = 8;

/** STFT geometry of the two reference paths. Both give T = (duration − 25 ms)/10 ms + 1 frames. */
interface StftGeometry { win: number; hop: number; nFft: number }
const STFT_16K: StftGeometry = { win: 400, hop: 160, nFft: 512 };
const STFT_8K: StftGeometry = { win: 200, hop: 80, nFft: 256 };
/** rFFT bins of the 16 kHz path; the filterbank is defined on these. */
const N_BINS = STFT_16K.nFft / 2 + 1; // 257

export interface AudioFeatureOptions {
  /**
   * 'exact' (default): every rate other than 16 kHz is resampled to 16 kHz with resample_poly(16000/g, fs/g).
   * 'reference': the hub processor's integer decimation, kept for reproducing its outputs. It is wrong for
   * most rates: 44.1 kHz → resample_poly(x, 1, 2) = 22.05 kHz then *treated as 16 kHz* (1.38× time stretch,
   * more tokens); 22.05/24 kHz are not resampled at all; 11.025/12 kHz are treated as 8 kHz; < 8 kHz is an error.
   */
  resampleRule?: 'exact' | 'reference';
  /**
   * How 8 kHz audio (after the rate rule) is featurised. 'resample' (default with 'exact'): upsample to 16 kHz.
   * 'fillzero' (default with 'reference', the hub processor's `_eightk_method`): 8 kHz STFT (n_fft 256) whose
   * spectrum is zero-filled to the 257 bins of the 16 kHz path (SPEC §4.4). The two give different features.
   */
  eightKMethod?: 'resample' | 'fillzero';
}

export interface AudioFeatures {
  /** [n, maxFrames, 80] log-mel, zero-padded (0 = the log floor ln 1). */
  features: Float32Array;
  maxFrames: number;
  /** Feature frames per audio. */
  frames: number[];
  /** Audio tokens per audio: ceil(frames/8). */
  embedSizes: number[];
  /** [n, maxFrames], 1 = real frame; only for n > 1 (as the reference processor). */
  attentionMask?: Uint8Array;
}

/** Samples at the rate the STFT runs at: 16 kHz, or 8 kHz for the 'fillzero' path. */
export interface ConditionedAudio { samples: Float32Array; rate: 16000 | 8000 }

const MIN_EXACT_RATE_HZ = 1000;

/** Applies the sample-rate rule (see AudioFeatureOptions) to mono audio. */
export function conditionSampleRate(audio: AudioData, opts: AudioFeatureOptions = {}): ConditionedAudio {
  const rule = opts.resampleRule ?? 'exact';
  const eightK = opts.eightKMethod ?? (rule === 'reference' ? 'fillzero' : 'resample');
  const fs = audio.sampleRate;
  if (!Number.isInteger(fs) || fs <= 0) throw new Error(`audio sample rate must be a positive integer in Hz, got ${fs}`);
  let x = audio.samples;
  let rate: number;
  if (rule === 'reference') {
    // Verbatim hub logic: integer decimation by fs//16000 or fs//8000 and relabelling (the bug described above).
    if (fs > MODEL_SAMPLE_RATE) { x = resamplePoly(x, 1, Math.floor(fs / MODEL_SAMPLE_RATE)); rate = MODEL_SAMPLE_RATE; }
    else if (fs > EIGHT_K_RATE && fs < MODEL_SAMPLE_RATE) { x = resamplePoly(x, 1, Math.floor(fs / EIGHT_K_RATE)); rate = EIGHT_K_RATE; }
    else if (fs < EIGHT_K_RATE) throw new Error(`sample rate ${fs} Hz is below 8000 Hz, which the reference rule rejects; use resampleRule 'exact'`);
    else rate = fs;
  } else {
    if (fs < MIN_EXACT_RATE_HZ) throw new Error(`sample rate ${fs} Hz is implausibly low (minimum ${MIN_EXACT_RATE_HZ} Hz); pass the rate in Hz`);
    // Deliberate difference from the reference: a true rate conversion, so duration and token count are right.
    rate = fs === EIGHT_K_RATE && eightK === 'fillzero' ? EIGHT_K_RATE : MODEL_SAMPLE_RATE;
    x = resampleRate(x, fs, rate);
  }
  if (rate === EIGHT_K_RATE && eightK === 'resample') { x = resamplePoly(x, 2, 1); rate = MODEL_SAMPLE_RATE; }
  return { samples: x, rate: rate as 16000 | 8000 };
}

/** Feature frames for `numSamples` at the STFT rate: (N − win)//hop + 1, tail dropped; 0 when shorter than a window. */
export function numFeatureFrames(numSamples: number, rate: 16000 | 8000 = MODEL_SAMPLE_RATE): number {
  const g = rate === EIGHT_K_RATE ? STFT_8K : STFT_16K;
  return numSamples < g.win ? 0 : Math.floor((numSamples - g.win) / g.hop) + 1;
}

/** Audio tokens for a clip of `numSamples16k` samples at 16 kHz: ceil(frames/8). */
export function computeNumAudioTokens(numSamples16k: number): number {
  if (!Number.isInteger(numSamples16k) || numSamples16k < 0) throw new Error(`sample count must be a non-negative integer, got ${numSamples16k}`);
  return Math.ceil(numFeatureFrames(numSamples16k) / FRAMES_PER_TOKEN);
}

/** Audio tokens for a clip at any rate under the given rule, without computing features. */
export function audioTokenCount(numSamples: number, sampleRate: number, opts: AudioFeatureOptions = {}): number {
  // Lengths follow resample_poly's ceil(N·up/down); the fillzero 8 kHz path has the same frame count as 16 kHz.
  const rule = opts.resampleRule ?? 'exact';
  let n: number, rate: 16000 | 8000;
  if (rule === 'reference') {
    if (sampleRate > MODEL_SAMPLE_RATE) { n = Math.ceil(numSamples / Math.floor(sampleRate / MODEL_SAMPLE_RATE)); rate = 16000; }
    else if (sampleRate > EIGHT_K_RATE && sampleRate < MODEL_SAMPLE_RATE) { n = Math.ceil(numSamples / Math.floor(sampleRate / EIGHT_K_RATE)); rate = 8000; }
    else if (sampleRate < EIGHT_K_RATE) throw new Error(`sample rate ${sampleRate} Hz is below 8000 Hz, which the reference rule rejects`);
    else { n = numSamples; rate = sampleRate as 16000 | 8000; }
  } else {
    n = Math.ceil((numSamples * MODEL_SAMPLE_RATE) / sampleRate);
    rate = 16000;
  }
  if (rate === EIGHT_K_RATE) n *= 2; // an 8 kHz clip has the frame count of its 16 kHz version on both 8 kHz paths
  return computeNumAudioTokens(n);
}

// ---------------------------------------------------------------------------------------------------------------
// Filterbank

/** A mel filter as its nonzero run of weights over rFFT bins. */
export interface MelFilter { startBin: number; weights: Float32Array }

/**
 * speechlib_mel(sampleRate, nFft, nMels, fmin, fmax) of the reference: triangles in mel space (mel = 1127·ln(1+f/700))
 * evaluated at bin centres, bins [klo, khi) only. Returns [nMels, nFft/2+1] float32, row-major.
 */
export function speechlibMelFilterbank(sampleRate = MODEL_SAMPLE_RATE, nFft = STFT_16K.nFft, nMels = N_MELS,
  fmin = MEL_FMIN_HZ, fmax = MEL_FMAX_HZ): Float32Array {
  const nBins = nFft / 2 + 1;
  const mel = (f: number) => 1127 * Math.log(1 + f / 700);
  const bin2mel = (k: number) => 1127 * Math.log(1 + (k * sampleRate) / (nFft * 700));
  const f2bin = (f: number) => Math.trunc((f * nFft) / sampleRate + 0.5);
  const klo = f2bin(fmin) + 1;
  const khi = Math.max(f2bin(fmax), klo);
  const mlo = mel(fmin), mhi = mel(fmax);
  // np.linspace(mlo, mhi, nMels + 2): start + i·step, last point exactly mhi.
  const step = (mhi - mlo) / (nMels + 1);
  const centers = Array.from({ length: nMels + 2 }, (_, i) => (i === nMels + 1 ? mhi : i * step + mlo));
  const ms = (mhi - mlo) / (nMels + 1);
  const w = new Float32Array(nMels * nBins);
  for (let m = 0; m < nMels; m++) {
    const [left, center, right] = [centers[m]!, centers[m + 1]!, centers[m + 2]!];
    for (let k = klo; k < khi; k++) {
      const mb = bin2mel(k);
      if (left < mb && mb < right) w[m * nBins + k] = 1 - Math.abs(center - mb) / ms;
    }
  }
  return w;
}

function sparseRows(w: Float32Array, nRows: number, nCols: number): MelFilter[] {
  const rows: MelFilter[] = [];
  for (let m = 0; m < nRows; m++) {
    const row = w.subarray(m * nCols, (m + 1) * nCols);
    let a = row.findIndex((v) => v !== 0);
    if (a < 0) a = 0;
    let b = nCols;
    while (b > a && row[b - 1] === 0) b--;
    rows.push({ startBin: a, weights: row.slice(a, b) });
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------
// Log-mel

/** numpy.hamming(M): symmetric 0.54 − 0.46·cos(2πn/(M−1)), float64. */
function hamming(m: number): Float64Array {
  const w = new Float64Array(m);
  for (let n = 0; n < m; n++) w[n] = 0.54 - 0.46 * Math.cos((2 * Math.PI * n) / (m - 1));
  return w;
}

/** Precomputed tables for one STFT geometry. */
class LogMelExtractor {
  private readonly window: Float64Array;
  private readonly fft: FFT;
  private readonly fftIn: Float64Array;
  private readonly fftOut: Float64Array;
  private readonly power = new Float32Array(N_BINS); // [257]; bins past the 8 kHz spectrum stay 0
  /** rFFT bins that reach the filterbank: all 257 at 16 kHz; at 8 kHz the Nyquist bin is dropped (fillzero). */
  private readonly usedBins: number;

  constructor(private readonly g: StftGeometry, private readonly filters: MelFilter[]) {
    this.window = hamming(g.win);
    this.fft = new FFT(g.nFft);
    this.fftIn = new Float64Array(g.nFft);
    this.fftOut = new Float64Array(2 * g.nFft);
    this.usedBins = g.nFft === STFT_16K.nFft ? N_BINS : g.nFft / 2;
  }

  /** [T, 80] features of mono samples written into `out` (row stride 80); returns T. */
  extract(x: Float32Array, out: Float32Array): number {
    const { win, hop } = this.g;
    const frames = x.length < win ? 0 : Math.floor((x.length - win) / hop) + 1;
    for (let t = 0; t < frames; t++) {
      this.frameSpectrum(x, t * hop);
      this.applyMel(out, t * N_MELS);
    }
    return frames;
  }

  /** Power spectrum of the frame at `start` into this.power, with the reference's float32 roundings. */
  private frameSpectrum(x: Float32Array, start: number): void {
    const { win } = this.g;
    const inp = this.fftIn, w = this.window;
    // Pre-emphasis inside the frame with prev[0] = frame[0]; float32 arithmetic, then the exact ×32768.
    for (let i = 0; i < win; i++) {
      const cur = x[start + i]!;
      const prev = x[start + (i === 0 ? 0 : i - 1)]!;
      inp[i] = w[i]! * (Math.fround(cur - Math.fround(PREEMPHASIS * prev)) * INT16_SCALE);
    }
    this.fft.realTransform(this.fftOut, inp); // tail of fftIn stays 0 (zero padding to nFft)
    const o = this.fftOut;
    for (let k = 0; k < this.usedBins; k++) {
      // rfft → complex64 → |S| (float32) → |S|² (float32)
      const mag = Math.fround(Math.hypot(Math.fround(o[2 * k]!), Math.fround(o[2 * k + 1]!)));
      this.power[k] = mag * mag;
    }
  }

  private applyMel(out: Float32Array, offset: number): void {
    const p = this.power;
    for (let m = 0; m < N_MELS; m++) {
      const { startBin, weights } = this.filters[m]!;
      let acc = 0;
      for (let j = 0; j < weights.length; j++) acc += p[startBin + j]! * weights[j]!;
      out[offset + m] = Math.log(Math.max(Math.fround(acc), 1));
    }
  }
}

let extractors: { k16: LogMelExtractor; k8: LogMelExtractor } | undefined;
function getExtractors() {
  if (!extractors) {
    const filters = sparseRows(speechlibMelFilterbank(), N_MELS, N_BINS);
    extractors = { k16: new LogMelExtractor(STFT_16K, filters), k8: new LogMelExtractor(STFT_8K, filters) };
  }
  return extractors;
}

/** [T, 80] log-mel of conditioned audio (16 kHz, or 8 kHz for the fillzero path). */
export function logMelSpectrogram(audio: ConditionedAudio): { data: Float32Array; frames: number } {
  const frames = numFeatureFrames(audio.samples.length, audio.rate);
  const data = new Float32Array(frames * N_MELS);
  const ex = getExtractors();
  (audio.rate === EIGHT_K_RATE ? ex.k8 : ex.k16).extract(audio.samples, data);
  return { data, frames };
}

function checkAudio(a: AudioData, i: number): void {
  if (!a || !(a.samples instanceof Float32Array)) throw new Error(`audio ${i}: expected {samples: Float32Array, sampleRate}`);
  const s = a.samples;
  for (let j = 0; j < s.length; j++) {
    if (!Number.isFinite(s[j]!)) throw new Error(`audio ${i}: sample ${j} is ${s[j]}; audio must be finite`);
  }
}

/**
 * Batch log-mel features as the reference processor returns them (input_audio_embeds, audio_embed_sizes,
 * audio_attention_mask). Each clip is mono `AudioData` at any rate; see AudioFeatureOptions for the rate rule.
 */
export function extractAudioFeatures(audios: AudioData[], opts: AudioFeatureOptions = {}): AudioFeatures {
  if (!Array.isArray(audios) || audios.length === 0) throw new Error('extractAudioFeatures: no audio given');
  const perAudio = audios.map((a, i) => {
    checkAudio(a, i);
    const cond = conditionSampleRate(a, opts);
    const mel = logMelSpectrogram(cond);
    if (mel.frames === 0) {
      const minSamples = cond.rate === EIGHT_K_RATE ? STFT_8K.win : STFT_16K.win;
      throw new Error(`audio ${i} is too short: ${cond.samples.length} samples at ${cond.rate} Hz after rate conversion; ` +
        `at least ${minSamples} (25 ms) are needed for one feature frame`);
    }
    return mel;
  });
  const frames = perAudio.map((m) => m.frames);
  const maxFrames = Math.max(...frames);
  const features = new Float32Array(audios.length * maxFrames * N_MELS);
  perAudio.forEach((m, i) => features.set(m.data, i * maxFrames * N_MELS));
  const result: AudioFeatures = { features, maxFrames, frames, embedSizes: frames.map((t) => Math.ceil(t / FRAMES_PER_TOKEN)) };
  if (audios.length > 1) {
    const mask = new Uint8Array(audios.length * maxFrames);
    frames.forEach((t, i) => mask.fill(1, i * maxFrames, i * maxFrames + t));
    result.attentionMask = mask;
  }
  return result;
}
