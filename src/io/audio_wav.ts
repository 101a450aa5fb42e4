// WAV (RIFF little-endian, RIFX big-endian, RF64) decoding by hand. Sample scaling follows libsndfile/soundfile's
// float read: unsigned 8-bit (b−128)/128, signed n-bit integer / 2^(n−1) (int16 / 32768 exactly), IEEE float as
// stored (float64 rounded to float32), G.711 A-law/µ-law expanded to int16 then / 32768.
import { MediaError } from './media.js';

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_ALAW = 0x0006;
const WAVE_FORMAT_MULAW = 0x0007;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
/** RF64 and streaming writers put this in the 32-bit size fields when the real size is unknown or elsewhere. */
const UNKNOWN_SIZE = 0xffffffff;

export interface PcmChannels { channels: Float32Array[]; sampleRate: number }

interface FmtChunk { format: number; channels: number; sampleRate: number; blockAlign: number; bitsPerSample: number }

function fail(msg: string): never {
  throw new MediaError('decode_failed', `WAV: ${msg}`);
}

function fourcc(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!);
}

export function isWav(b: Uint8Array): boolean {
  return b.length >= 12 && ['RIFF', 'RIFX', 'RF64'].includes(fourcc(b, 0)) && fourcc(b, 8) === 'WAVE';
}

function parseFmt(v: DataView, at: number, size: number, le: boolean): FmtChunk {
  if (size < 16) fail(`fmt chunk is ${size} bytes, expected at least 16`);
  let format = v.getUint16(at, le);
  const fmt = {
    format,
    channels: v.getUint16(at + 2, le),
    sampleRate: v.getUint32(at + 4, le),
    blockAlign: v.getUint16(at + 12, le),
    bitsPerSample: v.getUint16(at + 14, le),
  };
  if (format === WAVE_FORMAT_EXTENSIBLE) {
    // cbSize(2) validBits(2) channelMask(4) then the SubFormat GUID, whose first two bytes are the real format code.
    if (size < 40) fail(`WAVE_FORMAT_EXTENSIBLE fmt chunk is ${size} bytes, expected 40`);
    format = v.getUint16(at + 24, le);
    fmt.format = format;
  }
  if (fmt.channels < 1) fail('fmt chunk says 0 channels');
  if (fmt.sampleRate < 1) fail('fmt chunk says sample rate 0');
  return fmt;
}

type SampleReader = (v: DataView, at: number) => number;

function sampleReader(f: FmtChunk, le: boolean): SampleReader {
  // The container width comes from blockAlign (e.g. 24 valid bits stored in 32); integer samples are left-justified.
  const bytes = f.blockAlign / f.channels;
  const what = `format 0x${f.format.toString(16)}, ${f.bitsPerSample} bits in ${bytes}-byte containers`;
  if (!Number.isInteger(bytes) || bytes < 1) fail(`block align ${f.blockAlign} does not fit ${f.channels} channels`);
  switch (f.format) {
    case WAVE_FORMAT_PCM:
      switch (bytes) {
        case 1: return (v, at) => (v.getUint8(at) - 128) / 128;
        case 2: return (v, at) => v.getInt16(at, le) / 32768;
        case 3: return le
          ? (v, at) => ((v.getInt8(at + 2) << 16) | (v.getUint8(at + 1) << 8) | v.getUint8(at)) / 8388608
          : (v, at) => ((v.getInt8(at) << 16) | (v.getUint8(at + 1) << 8) | v.getUint8(at + 2)) / 8388608;
        case 4: return (v, at) => v.getInt32(at, le) / 2147483648;
      }
      break;
    case WAVE_FORMAT_IEEE_FLOAT:
      if (bytes === 4) return (v, at) => v.getFloat32(at, le);
      if (bytes === 8) return (v, at) => v.getFloat64(at, le);
      break;
    case WAVE_FORMAT_ALAW:
      if (bytes === 1) return (v, at) => alawToInt16(v.getUint8(at)) / 32768;
      break;
    case WAVE_FORMAT_MULAW:
      if (bytes === 1) return (v, at) => mulawToInt16(v.getUint8(at)) / 32768;
      break;
  }
  throw new MediaError('unsupported_format', `WAV: unsupported sample encoding (${what}); supported: PCM 8/16/24/32-bit, ` +
    'IEEE float 32/64, A-law, µ-law. Convert it, e.g. `ffmpeg -i in.wav -c:a pcm_s16le out.wav`');
}

/** ITU-T G.711 A-law → linear int16. */
function alawToInt16(a: number): number {
  a ^= 0x55;
  const seg = (a & 0x70) >> 4;
  let t = (a & 0x0f) << 4;
  t = seg === 0 ? t + 8 : seg === 1 ? t + 0x108 : (t + 0x108) << (seg - 1);
  return a & 0x80 ? t : -t;
}

/** ITU-T G.711 µ-law → linear int16. */
function mulawToInt16(u: number): number {
  u = ~u & 0xff;
  let t = ((u & 0x0f) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  return u & 0x80 ? 0x84 - t : t - 0x84;
}

/** Decodes a WAV file into per-channel float samples. */
export function decodeWav(b: Uint8Array): PcmChannels {
  if (!isWav(b)) fail('missing RIFF/RIFX/RF64 … WAVE header');
  const le = fourcc(b, 0) !== 'RIFX';
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let fmt: FmtChunk | undefined;
  let ds64DataSize: number | undefined;
  let data: { at: number; size: number } | undefined;
  for (let at = 12; at + 8 <= b.length;) {
    const id = fourcc(b, at);
    let size = v.getUint32(at + 4, le);
    const body = at + 8;
    if (id === 'ds64') {
      if (size < 24 || body + 24 > b.length) fail('RF64 ds64 chunk is truncated (needs 24 bytes)');
      ds64DataSize = Number(v.getBigUint64(body + 8, true));
    }
    if (id === 'fmt ') fmt = parseFmt(v, body, Math.max(0, Math.min(size, b.length - body)), le);
    if (id === 'data') {
      if (size === UNKNOWN_SIZE && ds64DataSize !== undefined) size = ds64DataSize;
      // Writers that never patched the size (0 or 0xFFFFFFFF) or truncated files: take what is there, as libsndfile does.
      if (size === 0 || body + size > b.length) size = b.length - body;
      data = { at: body, size };
      break;
    }
    if (size === UNKNOWN_SIZE) break;
    at = body + size + (size & 1); // chunks are padded to even sizes
  }
  if (!fmt) fail('no fmt chunk before the data chunk');
  if (!data) fail('no data chunk');
  const read = sampleReader(fmt, le);
  const nCh = fmt.channels;
  const bytes = fmt.blockAlign / nCh;
  const frames = Math.floor(data.size / fmt.blockAlign);
  if (frames === 0) throw new MediaError('empty', 'WAV: the data chunk holds no complete sample frame');
  const channels = Array.from({ length: nCh }, () => new Float32Array(frames));
  for (let i = 0, at = data.at; i < frames; i++) {
    for (let c = 0; c < nCh; c++, at += bytes) {
      const x = read(v, at);
      if (!Number.isFinite(x)) fail(`sample ${i} of channel ${c} is ${x}; float WAV samples must be finite`);
      channels[c]![i] = x;
    }
  }
  return { channels, sampleRate: fmt.sampleRate };
}
