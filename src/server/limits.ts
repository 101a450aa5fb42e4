// Per-request budgets, checked before work: text characters before tokenizing, media count, per-image and
// per-request pixels from container headers, audio seconds from headers and again after decoding. Media are
// decoded here, in a worker (decode_pool.ts), and handed to the engine as pixels / samples.
import { probeAudio, probeImage } from '../io/probe.js';
import { MediaError } from '../io/media.js';
import { DecodePool } from '../io/decode_pool.js';
import { planImage } from '../models/phi4mm/image_processor.js';
import { HttpError } from './http.js';

export interface RequestLimits {
  /** Largest request body in bytes (default 64 MiB: base64 audio is big). */
  maxBodyBytes: number;
  /** Largest encoded media item in bytes, however it arrives (default 32 MiB). */
  maxMediaBytes: number;
  /** Images + audio clips per request (default 16). */
  maxMediaItems: number;
  /** Pixels of one image, width × height from its header (default 36 MP: a 7360×4912 photo). */
  maxImagePixels: number;
  /** Pixels of all images of a request (default 72 MP). */
  maxTotalPixels: number;
  /** Seconds of audio per request, from headers and after decoding (default 600). */
  maxAudioSeconds: number;
  /** Characters of message text per request, before tokenizing (default 400 000 ≈ 100k tokens). */
  maxPromptChars: number;
  /** Upper bound for max_tokens / max_completion_tokens (default 131 072, the model's context). */
  maxTokens: number;
}

export const DEFAULT_LIMITS: RequestLimits = {
  maxBodyBytes: 64 * 2 ** 20,
  maxMediaBytes: 32 * 2 ** 20,
  maxMediaItems: 16,
  maxImagePixels: 36_000_000,
  maxTotalPixels: 72_000_000,
  maxAudioSeconds: 600,
  maxPromptChars: 400_000,
  maxTokens: 131_072,
};

/** Audio rates the feature extractor can convert from (below 1 kHz it refuses; above this is not audio). */
export const MIN_AUDIO_RATE_HZ = 1000;
export const MAX_AUDIO_RATE_HZ = 384_000;
/** One feature frame needs a 25 ms window. */
export const MIN_AUDIO_SECONDS = 0.025;

export function resolveLimits(o: Partial<RequestLimits>): RequestLimits {
  const out = { ...DEFAULT_LIMITS };
  for (const k of Object.keys(DEFAULT_LIMITS) as Array<keyof RequestLimits>) {
    const v = o[k];
    if (v === undefined) continue;
    if (!(typeof v === 'number' && v > 0)) throw new Error(`server option ${k} must be a positive number (got ${String(v)})`);
    out[k] = v;
  }
  return out;
}

const limitError = (message: string, param: string | null, code = 'limit_exceeded') => new HttpError(400, 'invalid_request_error', message, param, code);

/** Tracks a request's running totals against the limits. */
/** A clip's sample rate and length against the supported rates and a server option's limit (header or decoded). */
export function checkAudioRateAndLength(rate: number, seconds: number, maxSeconds: number, option: string, param: string, from: string): void {
  if (!(rate >= MIN_AUDIO_RATE_HZ && rate <= MAX_AUDIO_RATE_HZ)) throw limitError(`${param}: ${from} says ${rate} Hz; supported sample rates are ${MIN_AUDIO_RATE_HZ}..${MAX_AUDIO_RATE_HZ} Hz`, param, 'invalid_audio');
  if (seconds > maxSeconds) throw limitError(`${param}: ${from} gives ${seconds.toFixed(1)} s of audio, more than the limit of ${maxSeconds} s (server option ${option})`, param);
}

export class Budget {
  private pixels = 0;
  private seconds = 0;
  constructor(readonly limits: RequestLimits) {}

  checkCounts(chars: number, mediaItems: number): void {
    const l = this.limits;
    if (chars > l.maxPromptChars) throw limitError(`the messages hold ${chars} characters of text, more than the limit of ${l.maxPromptChars} (server option maxPromptChars)`, 'messages', 'prompt_too_long');
    if (mediaItems > l.maxMediaItems) throw limitError(`the request has ${mediaItems} images/audio clips, more than the limit of ${l.maxMediaItems} (server option maxMediaItems)`, 'messages');
  }

  /** Header checks for an image; returns its size. */
  image(bytes: Uint8Array, param: string): { width: number; height: number } {
    const info = withParam(param, () => probeImage(bytes));
    const px = info.width * info.height, l = this.limits;
    const what = `${param}: ${info.format.toUpperCase()} image of ${info.width}×${info.height}`;
    if (px > l.maxImagePixels) throw limitError(`${what} = ${px} pixels exceeds the per-image limit of ${l.maxImagePixels} (server option maxImagePixels)`, param);
    this.pixels += px;
    if (this.pixels > l.maxTotalPixels) throw limitError(`${param}: the request's images add up to ${this.pixels} pixels, more than the limit of ${l.maxTotalPixels} (server option maxTotalPixels)`, param);
    try {
      planImage(info.width, info.height); // aspect ratios the processor cannot crop
    } catch (e) {
      throw limitError(`${param}: ${(e as Error).message}`, param, 'invalid_image');
    }
    return info;
  }

  /** Header checks for an audio clip; returns the seconds its header declares. */
  audio(bytes: Uint8Array, param: string): number {
    const info = withParam(param, () => probeAudio(bytes));
    this.checkAudio(info.sampleRate, info.seconds, param, `${info.format} header`);
    this.seconds += info.seconds;
    if (this.seconds > this.limits.maxAudioSeconds) throw limitError(`${param}: the request's audio adds up to ${this.seconds.toFixed(1)} s, more than the limit of ${this.limits.maxAudioSeconds} s (server option maxAudioSeconds)`, param);
    return info.seconds;
  }

  /** After decoding: the real length must also fit (headers can lie). */
  decodedAudio(samples: number, sampleRate: number, headerSeconds: number, param: string): void {
    const s = samples / sampleRate;
    this.checkAudio(sampleRate, s, param, 'decoded audio');
    this.seconds += s - headerSeconds;
    if (this.seconds > this.limits.maxAudioSeconds) throw limitError(`${param}: the decoded audio adds up to ${this.seconds.toFixed(1)} s, more than the limit of ${this.limits.maxAudioSeconds} s`, param);
  }

  private checkAudio(rate: number, seconds: number, param: string, from: string): void {
    checkAudioRateAndLength(rate, seconds, this.limits.maxAudioSeconds, 'maxAudioSeconds', param, from);
    if (seconds < MIN_AUDIO_SECONDS) throw limitError(`${param}: ${from} gives ${(seconds * 1000).toFixed(1)} ms of audio; at least ${MIN_AUDIO_SECONDS * 1000} ms are needed`, param, 'invalid_audio');
  }
}

function withParam<T>(param: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof MediaError) throw new HttpError(400, 'invalid_request_error', `${param}: ${e.message}`, param, e.code);
    throw e;
  }
}

let pool: DecodePool | null = null;
/** The shared decode worker. */
export function decodePool(): DecodePool {
  return (pool ??= new DecodePool());
}
