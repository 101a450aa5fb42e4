// Audio loading: resolve a source (via media.ts), sniff the container from magic bytes, decode (WAV by hand;
// MP3/FLAC/Ogg Vorbis/Ogg Opus with the WASM decoders), and mix to mono. The result keeps the file's own
// sample rate; rate conversion for the model lives in the audio processor.
import { loadMediaBytes, MediaError, type MediaFetchOptions, type MediaSource } from './media.js';
import { decodeWav, isWav, type PcmChannels } from './audio_wav.js';

export { resamplePoly, resampleRate } from './audio_resample.js';

/** Mono float samples (nominally in [−1, 1]) at `sampleRate` Hz. */
export interface AudioData {
  samples: Float32Array;
  sampleRate: number;
}

export type AudioFormat = 'wav' | 'mp3' | 'flac' | 'ogg-vorbis' | 'ogg-opus' | 'ogg-flac';

/** Already decoded audio: mono samples, or one Float32Array per channel. */
export type DecodedAudioInput = { samples: Float32Array; sampleRate: number } | { channels: Float32Array[]; sampleRate: number };

export type AudioInput = MediaSource | DecodedAudioInput;

/** Formats recognised only to give a helpful error. */
const UNSUPPORTED_SIGNATURES: Array<{ name: string; test: (b: Uint8Array) => boolean }> = [
  { name: 'MP4/M4A (AAC/ALAC)', test: (b) => ascii(b, 4, 4) === 'ftyp' },
  { name: 'WebM/Matroska', test: (b) => b[0] === 0x1a && b[1] === 0x45 && b[2] === 0xdf && b[3] === 0xa3 },
  { name: 'AIFF', test: (b) => ascii(b, 0, 4) === 'FORM' && ['AIFF', 'AIFC'].includes(ascii(b, 8, 4)) },
  { name: 'ADTS AAC', test: (b) => b[0] === 0xff && ((b[1] ?? 0) & 0xf6) === 0xf0 },
  { name: 'CAF', test: (b) => ascii(b, 0, 4) === 'caff' },
];

function ascii(b: Uint8Array, at: number, n: number): string {
  return at + n <= b.length ? String.fromCharCode(...b.subarray(at, at + n)) : '';
}

/** Skips an ID3v2 tag (some MP3 and FLAC files start with one); returns the offset of the audio data. */
function skipId3(b: Uint8Array): number {
  if (ascii(b, 0, 3) !== 'ID3' || b.length < 10) return 0;
  const size = ((b[6]! & 0x7f) << 21) | ((b[7]! & 0x7f) << 14) | ((b[8]! & 0x7f) << 7) | (b[9]! & 0x7f);
  const footer = b[5]! & 0x10 ? 10 : 0;
  return 10 + size + footer;
}

function isMpegAudioFrame(b: Uint8Array, at: number): boolean {
  // 11-bit sync, MPEG version not reserved (01), layer not reserved (00), bitrate index not 1111.
  if (at + 4 > b.length || b[at] !== 0xff || (b[at + 1]! & 0xe0) !== 0xe0) return false;
  return ((b[at + 1]! >> 3) & 3) !== 1 && ((b[at + 1]! >> 1) & 3) !== 0 && (b[at + 2]! >> 4) !== 0xf;
}

/** Identifies the container/codec from magic bytes; undefined when not a supported format. */
export function sniffAudioFormat(b: Uint8Array): AudioFormat | undefined {
  if (isWav(b)) return 'wav';
  if (ascii(b, 0, 4) === 'OggS') {
    // The first page carries the codec's identification packet right after the segment table.
    const segs = b[26] ?? 0;
    const head = 27 + segs;
    if (ascii(b, head, 8) === 'OpusHead') return 'ogg-opus';
    if (b[head] === 0x01 && ascii(b, head + 1, 6) === 'vorbis') return 'ogg-vorbis';
    if (b[head] === 0x7f && ascii(b, head + 1, 4) === 'FLAC') return 'ogg-flac';
    return undefined;
  }
  const at = skipId3(b);
  if (ascii(b, at, 4) === 'fLaC') return 'flac';
  if (isMpegAudioFrame(b, at)) return 'mp3';
  // An ID3v2 tag is an MP3 convention; padding or junk may sit before the first frame, which mpg123 skips.
  if (at > 0 && at < b.length) return 'mp3';
  return undefined;
}

interface WasmDecodeResult { channelData: Float32Array[]; samplesDecoded: number; sampleRate: number; bitDepth?: number; errors: unknown[] }

// The decoder packages embed their WASM as large strings: load each only when a file of its format shows up.
async function decodeWithWasm(format: AudioFormat, b: Uint8Array): Promise<WasmDecodeResult> {
  switch (format) {
    case 'mp3': {
      const { MPEGDecoder } = await import('mpg123-decoder');
      const d = new MPEGDecoder();
      await d.ready;
      try { return d.decode(b); } finally { d.free(); }
    }
    case 'flac':
    case 'ogg-flac': {
      const { FLACDecoder } = await import('@wasm-audio-decoders/flac');
      const d = new FLACDecoder();
      await d.ready;
      try { return await d.decodeFile(b); } finally { d.free(); }
    }
    case 'ogg-vorbis': {
      const { OggVorbisDecoder } = await import('@wasm-audio-decoders/ogg-vorbis');
      const d = new OggVorbisDecoder();
      await d.ready;
      try { return await d.decodeFile(b); } finally { d.free(); }
    }
    case 'ogg-opus': {
      const { OggOpusDecoder } = await import('ogg-opus-decoder');
      const d = new OggOpusDecoder();
      await d.ready;
      try { return await d.decodeFile(b); } finally { d.free(); }
    }
    default:
      throw new Error(`no WASM decoder for ${format}`);
  }
}

/** Decodes encoded audio bytes to per-channel samples at the file's rate. */
export async function decodeAudioChannels(bytes: Uint8Array): Promise<PcmChannels & { format: AudioFormat }> {
  if (bytes.length === 0) throw new MediaError('empty', 'audio data is empty (0 bytes)');
  const format = sniffAudioFormat(bytes);
  if (!format) {
    const known = UNSUPPORTED_SIGNATURES.find((s) => s.test(bytes));
    throw new MediaError('unsupported_format', known
      ? `audio format ${known.name} is not supported; convert to WAV, FLAC, MP3, Ogg Vorbis or Ogg Opus (e.g. \`ffmpeg -i in -ar 16000 -ac 1 out.wav\`)`
      : 'unrecognised audio data: not WAV, FLAC, MP3, Ogg Vorbis or Ogg Opus (checked the magic bytes)');
  }
  if (format === 'wav') {
    try {
      return { ...decodeWav(bytes), format };
    } catch (e) {
      if (e instanceof RangeError) throw new MediaError('decode_failed', `WAV: truncated or inconsistent chunk sizes (${e.message})`, { cause: e });
      throw e;
    }
  }
  let r: WasmDecodeResult;
  try {
    r = await decodeWithWasm(format, bytes);
  } catch (e) {
    throw new MediaError('decode_failed', `${format} decoder failed: ${(e as Error).message}`, { cause: e });
  }
  if (!(r.samplesDecoded > 0) || r.channelData.length === 0) {
    const why = r.errors.length ? `: ${describeErrors(r.errors)}` : '';
    throw new MediaError('decode_failed', `${format}: no audio could be decoded (corrupt or truncated file)${why}`);
  }
  let n = r.samplesDecoded;
  if (format === 'ogg-opus' && r.sampleRate === OPUS_RATE_HZ) n = Math.min(n, oggOpusLength(bytes) ?? n);
  // Decoders may hand out views on their WASM heap (freed above) or over-long buffers: copy exactly.
  const channels = r.channelData.map((c) => c.slice(0, n));
  for (const c of channels) for (let i = 0; i < c.length; i++) if (!Number.isFinite(c[i]!)) throw new MediaError('decode_failed', `${format}: decoded sample ${i} is ${c[i]}; corrupt file`);
  if (format === 'flac' || format === 'ogg-flac') channels.forEach((c) => rescaleFlac(c, r.bitDepth));
  return { channels, sampleRate: r.sampleRate, format };
}

/** Integer exactly recoverable from a float32 int/(2^(b−1)−1) up to this depth (float32 has a 24-bit mantissa). */
const MAX_EXACT_FLAC_BITS = 24;

/**
 * The FLAC decoder scales n-bit integers by 1/(2^(n−1)−1); soundfile (and our WAV reader) use 1/2^(n−1), so an
 * int16 FLAC would be 1.00003× louder than the same WAV. Recover the integer and rescale, in place.
 */
function rescaleFlac(x: Float32Array, bitDepth: number | undefined): void {
  if (!bitDepth || bitDepth < 4 || bitDepth > 32) return;
  const full = 2 ** (bitDepth - 1);
  const max = full - 1;
  if (bitDepth <= MAX_EXACT_FLAC_BITS) for (let i = 0; i < x.length; i++) x[i] = Math.round(x[i]! * max) / full;
  else for (let i = 0; i < x.length; i++) x[i] = (x[i]! * max) / full;
}

const OGG_PAGE_HEADER_BYTES = 27;
/** Ogg Opus granule positions count 48 kHz samples whatever the input rate was. */
const OPUS_RATE_HZ = 48000;

/**
 * Samples (at 48 kHz) of a single-stream Ogg Opus file: last granule position − pre-skip (RFC 7845 §4).
 * ogg-opus-decoder removes the pre-skip at the start but leaves that many extra samples at the end.
 * Undefined for chained/multiplexed streams or unreadable pages (then the decoder's count is kept).
 */
function oggOpusLength(b: Uint8Array): number | undefined {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let serial: number | undefined, granule: bigint | undefined, preSkip: number | undefined;
  for (let at = 0; at + OGG_PAGE_HEADER_BYTES <= b.length;) {
    if (ascii(b, at, 4) !== 'OggS') return undefined;
    const pageSerial = v.getUint32(at + 14, true);
    if (serial === undefined) serial = pageSerial;
    else if (pageSerial !== serial) return undefined;
    const nSegs = b[at + 26]!;
    let body = 0;
    for (let i = 0; i < nSegs; i++) body += b[at + OGG_PAGE_HEADER_BYTES + i] ?? 0;
    const bodyAt = at + OGG_PAGE_HEADER_BYTES + nSegs;
    if (preSkip === undefined && ascii(b, bodyAt, 8) === 'OpusHead' && bodyAt + 12 <= b.length) preSkip = v.getUint16(bodyAt + 10, true);
    const g = v.getBigInt64(at + 6, true);
    if (g >= 0n) granule = g; // −1: no packet ends on this page
    at = bodyAt + body;
  }
  if (granule === undefined || preSkip === undefined) return undefined;
  const n = Number(granule) - preSkip;
  return n > 0 ? n : undefined;
}

function describeErrors(errors: unknown[]): string {
  const first = errors[0] as { message?: string; error?: string } | undefined;
  return `${errors.length} error(s), first: ${first?.message ?? first?.error ?? String(first)}`;
}

/** Averages channels to mono (numpy `wav.mean(1)`: float64 sum / C, rounded to float32). */
export function mixToMono(channels: Float32Array[]): Float32Array {
  if (channels.length === 0) throw new Error('audio has no channels');
  if (channels.length === 1) return channels[0]!;
  const n = channels[0]!.length;
  if (channels.some((c) => c.length !== n)) throw new Error(`channels have different lengths: ${channels.map((c) => c.length).join(', ')}`);
  const out = new Float32Array(n);
  const c = channels.length;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < c; k++) s += channels[k]![i]!;
    out[i] = s / c;
  }
  return out;
}

/** Decodes encoded audio bytes (format from magic bytes) to mono at the file's sample rate. */
export async function decodeAudio(bytes: Uint8Array): Promise<AudioData> {
  const { channels, sampleRate } = await decodeAudioChannels(bytes);
  return { samples: mixToMono(channels), sampleRate };
}

function checkRate(r: unknown): number {
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) {
    throw new Error(`decoded audio needs sampleRate as a positive integer in Hz, got ${String(r)}`);
  }
  return r;
}

function isDecoded(src: AudioInput): src is DecodedAudioInput {
  return typeof src === 'object' && src !== null && !(src instanceof Uint8Array) && !(src instanceof ArrayBuffer)
    && ('samples' in src || 'channels' in src);
}

/**
 * Any audio input → mono AudioData at its own rate: http(s) URL, file path, file:// URL, data: URL, raw base64,
 * Buffer/Uint8Array/ArrayBuffer of an encoded file, or decoded samples ({samples} mono or {channels}) with a rate.
 */
export async function loadAudio(src: AudioInput, opts: MediaFetchOptions = {}): Promise<AudioData> {
  if (isDecoded(src)) {
    const sampleRate = checkRate(src.sampleRate);
    if ('channels' in src) {
      if (!Array.isArray(src.channels) || !src.channels.every((c) => c instanceof Float32Array)) {
        throw new Error('decoded audio `channels` must be an array of Float32Array (one per channel)');
      }
      return { samples: mixToMono(src.channels), sampleRate };
    }
    if (!(src.samples instanceof Float32Array)) throw new Error('decoded audio `samples` must be a Float32Array (mono)');
    return { samples: src.samples, sampleRate };
  }
  return decodeAudio(await loadMediaBytes(src, 'audio', opts));
}
