// Container header probes: image size and audio duration read from the first bytes (or a frame walk), before
// anything is decoded, so budgets can refuse a 35-byte "10000×10000" GIF without allocating its pixels.
import { MediaError } from './media.js';
import { sniffImageFormat, type ImageFormat } from './image.js';
import { sniffAudioFormat, type AudioFormat } from './audio.js';

export interface ImageInfo { format: ImageFormat; width: number; height: number }
export interface AudioInfo { format: AudioFormat; sampleRate: number; channels: number; /** Estimated from headers/frames. */ seconds: number }

const u16be = (b: Uint8Array, i: number) => ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
const u16le = (b: Uint8Array, i: number) => (b[i] ?? 0) | ((b[i + 1] ?? 0) << 8);
const u24le = (b: Uint8Array, i: number) => u16le(b, i) | ((b[i + 2] ?? 0) << 16);
const u32be = (b: Uint8Array, i: number) => u16be(b, i) * 65536 + u16be(b, i + 2);
const u32le = (b: Uint8Array, i: number) => u16le(b, i) + u16le(b, i + 2) * 65536;
const tag = (b: Uint8Array, i: number, n = 4) => (i + n <= b.length ? String.fromCharCode(...b.subarray(i, i + n)) : '');
const bad = (what: string): never => { throw new MediaError('decode_failed', what); };

/** Width and height from the container header (PNG IHDR, JPEG SOFn, GIF screen, WebP VP8/VP8L/VP8X). */
export function probeImage(b: Uint8Array): ImageInfo {
  const format = sniffImageFormat(b);
  if (!format) throw new MediaError('unsupported_format', 'unsupported image format; PNG, JPEG, WebP and GIF are supported');
  let w = 0, h = 0;
  switch (format) {
    case 'png':
      if (tag(b, 12) !== 'IHDR') bad('PNG: the first chunk is not IHDR');
      w = u32be(b, 16); h = u32be(b, 20);
      break;
    case 'gif':
      if (b.length < 13) bad('GIF: truncated header');
      w = u16le(b, 6); h = u16le(b, 8);
      break;
    case 'jpeg': [w, h] = jpegSize(b); break;
    case 'webp': [w, h] = webpSize(b); break;
  }
  if (!(w > 0 && h > 0)) bad(`${format.toUpperCase()}: header declares a ${w}×${h} image`);
  return { format, width: w, height: h };
}

function jpegSize(b: Uint8Array): [number, number] {
  for (let i = 2; i + 9 <= b.length;) {
    if (b[i] !== 0xff) bad('JPEG: corrupt marker structure before the frame header');
    const m = b[i + 1]!;
    if (m === 0xff) { i++; continue; }
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) { i += 2; continue; } // no length
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) return [u16be(b, i + 7), u16be(b, i + 5)];
    if (m === 0xd9 || m === 0xda) break; // end of image / scan before any frame header
    i += 2 + u16be(b, i + 2);
  }
  return bad('JPEG: no frame header (SOF) found');
}

function webpSize(b: Uint8Array): [number, number] {
  const chunk = tag(b, 12);
  if (chunk === 'VP8X' && b.length >= 30) return [u24le(b, 24) + 1, u24le(b, 27) + 1];
  if (chunk === 'VP8 ' && b.length >= 30) {
    if (b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a) bad('WebP: bad VP8 frame signature');
    return [u16le(b, 26) & 0x3fff, u16le(b, 28) & 0x3fff];
  }
  if (chunk === 'VP8L' && b.length >= 25) {
    if (b[20] !== 0x2f) bad('WebP: bad VP8L signature');
    const bits = u32le(b, 21);
    return [(bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1];
  }
  return bad(`WebP: unknown or truncated first chunk "${chunk}"`);
}

/** Sample rate, channels and duration from the container (WAV chunks, FLAC STREAMINFO, MPEG frame walk, Ogg granules). */
export function probeAudio(b: Uint8Array): AudioInfo {
  const format = sniffAudioFormat(b);
  if (!format) throw new MediaError('unsupported_format', 'unrecognised audio data: not WAV, FLAC, MP3, Ogg Vorbis or Ogg Opus (checked the magic bytes)');
  switch (format) {
    case 'wav': return wavInfo(b);
    case 'flac': return flacInfo(b);
    case 'mp3': return mp3Info(b);
    default: return oggInfo(b, format);
  }
}

function wavInfo(b: Uint8Array): AudioInfo {
  const le = tag(b, 0) !== 'RIFX';
  const r32 = (i: number) => (le ? u32le(b, i) : u32be(b, i));
  const r16 = (i: number) => (le ? u16le(b, i) : u16be(b, i));
  let rate = 0, channels = 0, align = 0, ds64: number | undefined;
  for (let at = 12; at + 8 <= b.length;) {
    const id = tag(b, at), size = r32(at + 4), body = at + 8;
    if (id === 'ds64') {
      if (size < 24 || body + 24 > b.length) bad('WAV: RF64 ds64 chunk is truncated');
      ds64 = u32le(b, body + 8) + u32le(b, body + 12) * 2 ** 32;
    }
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > b.length) bad('WAV: fmt chunk is truncated');
      channels = r16(body + 2); rate = r32(body + 4); align = r16(body + 12);
    }
    if (id === 'data') {
      if (!rate || !channels || !align) bad('WAV: no usable fmt chunk before the data chunk');
      let n = size === 0xffffffff && ds64 !== undefined ? ds64 : size;
      if (n === 0 || body + n > b.length) n = b.length - body;
      return { format: 'wav', sampleRate: rate, channels, seconds: Math.floor(n / align) / rate };
    }
    if (size === 0xffffffff) break;
    at = body + size + (size & 1);
  }
  return bad('WAV: no data chunk');
}

function flacInfo(b: Uint8Array): AudioInfo {
  let at = tag(b, 0, 3) === 'ID3' ? 10 + (((b[6]! & 0x7f) << 21) | ((b[7]! & 0x7f) << 14) | ((b[8]! & 0x7f) << 7) | (b[9]! & 0x7f)) : 0;
  at += 4; // "fLaC"
  if ((b[at]! & 0x7f) !== 0 || at + 4 + 18 > b.length) bad('FLAC: the first metadata block is not a complete STREAMINFO');
  const s = at + 4;
  const rate = (b[s + 10]! << 12) | (b[s + 11]! << 4) | (b[s + 12]! >> 4);
  const channels = ((b[s + 12]! >> 1) & 7) + 1;
  const total = (b[s + 13]! & 0x0f) * 2 ** 32 + u32be(b, s + 14);
  if (!rate) bad('FLAC: STREAMINFO sample rate is 0');
  if (!total) bad('FLAC: STREAMINFO does not give the total sample count; re-encode the file (e.g. `ffmpeg -i in.flac out.flac`)');
  return { format: 'flac', sampleRate: rate, channels, seconds: total / rate };
}

const MPEG_RATES = [[11025, 12000, 8000], [0, 0, 0], [22050, 24000, 16000], [44100, 48000, 32000]]; // by version bits
const L3_KBPS_V1 = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const L3_KBPS_V2 = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/** Walks MPEG audio frame headers (resyncing over junk) and sums their samples. */
function mp3Info(b: Uint8Array): AudioInfo {
  let at = tag(b, 0, 3) === 'ID3' ? 10 + (((b[6]! & 0x7f) << 21) | ((b[7]! & 0x7f) << 14) | ((b[8]! & 0x7f) << 7) | (b[9]! & 0x7f)) : 0;
  let samples = 0, rate = 0, channels = 1;
  while (at + 4 <= b.length) {
    const h1 = b[at + 1]!, h2 = b[at + 2]!;
    const ver = (h1 >> 3) & 3, layer = (h1 >> 1) & 3, bi = h2 >> 4, ri = (h2 >> 2) & 3;
    if (b[at] !== 0xff || (h1 & 0xe0) !== 0xe0 || ver === 1 || layer === 0 || bi === 0 || bi === 15 || ri === 3) { at++; continue; }
    const sr = MPEG_RATES[ver]![ri]!, v1 = ver === 3, pad = (h2 >> 1) & 1;
    // Layer III bitrates (layers I/II are rare in practice; sizing them as III only changes the estimate).
    const kbps = (v1 ? L3_KBPS_V1 : L3_KBPS_V2)[bi]!;
    const perFrame = layer === 3 ? 384 : layer === 2 || v1 ? 1152 : 576;
    const len = layer === 3 ? Math.floor((12 * kbps * 1000) / sr + pad) * 4 : Math.floor(((perFrame / 8) * kbps * 1000) / sr) + pad;
    if (len < 4) { at++; continue; }
    rate ||= sr;
    if (!samples) channels = (b[at + 3]! >> 6) === 3 ? 1 : 2;
    samples += perFrame;
    at += len;
  }
  if (!rate) bad('MP3: no MPEG audio frame found');
  return { format: 'mp3', sampleRate: rate, channels, seconds: samples / rate };
}

function oggInfo(b: Uint8Array, format: AudioFormat): AudioInfo {
  const head = 27 + (b[26] ?? 0);
  let rate = 48000, channels = 1;
  if (format === 'ogg-vorbis') { rate = u32le(b, head + 12); channels = b[head + 11] ?? 1; }
  else if (format === 'ogg-opus') channels = b[head + 9] ?? 1;
  else { rate = ((b[head + 27]! << 12) | (b[head + 28]! << 4) | (b[head + 29]! >> 4)); channels = ((b[head + 29]! >> 1) & 7) + 1; }
  if (!rate) bad(`${format}: identification header gives sample rate 0`);
  let granule = 0;
  for (let at = 0; at + 27 <= b.length;) {
    if (tag(b, at) !== 'OggS') { at++; continue; }
    const lo = u32le(b, at + 6), hi = u32le(b, at + 10);
    if (hi !== 0xffffffff) granule = Math.max(granule, hi * 2 ** 32 + lo);
    const segs = b[at + 26]!;
    let body = 0;
    for (let i = 0; i < segs; i++) body += b[at + 27 + i] ?? 0;
    at += 27 + segs + body;
  }
  return { format, sampleRate: rate, channels, seconds: granule / rate };
}
