// Media formats, without the DOM: which files the server decodes as they are (the same magic bytes as
// src/io/image.ts and src/io/audio.ts), and a 16-bit PCM WAV encoder for everything else the browser can decode
// (a recording's WebM/Opus, M4A, ...).

export type ServerAudioFormat = 'wav' | 'mp3' | 'flac' | 'ogg' | 'opus';
export type ServerImageFormat = 'png' | 'jpeg' | 'webp' | 'gif';

function ascii(b: Uint8Array, at: number, n: number): string {
  return at + n <= b.length ? String.fromCharCode(...b.subarray(at, at + n)) : '';
}

/** The `input_audio.format` for bytes the server decodes, or null when the page must convert them first. */
export function serverAudioFormat(b: Uint8Array): ServerAudioFormat | null {
  if (['RIFF', 'RIFX', 'RF64'].includes(ascii(b, 0, 4)) && ascii(b, 8, 4) === 'WAVE') return 'wav';
  if (ascii(b, 0, 4) === 'OggS') {
    const head = 27 + (b[26] ?? 0); // the codec's identification packet follows the first page's segment table
    if (ascii(b, head, 8) === 'OpusHead') return 'opus';
    if (b[head] === 0x01 && ascii(b, head + 1, 6) === 'vorbis') return 'ogg';
    if (b[head] === 0x7f && ascii(b, head + 1, 4) === 'FLAC') return 'ogg';
    return null;
  }
  // An ID3v2 tag may precede FLAC or MPEG audio.
  let at = 0;
  if (ascii(b, 0, 3) === 'ID3' && b.length >= 10) at = 10 + (((b[6]! & 0x7f) << 21) | ((b[7]! & 0x7f) << 14) | ((b[8]! & 0x7f) << 7) | (b[9]! & 0x7f)) + (b[5]! & 0x10 ? 10 : 0);
  if (ascii(b, at, 4) === 'fLaC') return 'flac';
  // MPEG audio frame sync, version and layer not reserved, bitrate index not 1111.
  const b1 = b[at + 1] ?? 0;
  if (b[at] === 0xff && (b1 & 0xe0) === 0xe0 && ((b1 >> 3) & 3) !== 1 && ((b1 >> 1) & 3) !== 0 && ((b[at + 2] ?? 0) >> 4) !== 0xf) return 'mp3';
  if (at > 0 && at < b.length) return 'mp3';
  return null;
}

/** The image format for bytes the server decodes, or null when the page must convert them (to PNG) first. */
export function serverImageFormat(b: Uint8Array): ServerImageFormat | null {
  if (b[0] === 0x89 && ascii(b, 1, 3) === 'PNG') return 'png';
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return 'webp';
  if (ascii(b, 0, 4) === 'GIF8') return 'gif';
  return null;
}

const WAV_HEADER_BYTES = 44;
const PCM16_MAX = 0x7fff;

/** Mono float samples in [-1, 1] as a canonical 16-bit PCM WAV file (clipped, rounded to nearest). */
export function encodeWav(samples: Float32Array, sampleRate: number): Uint8Array {
  if (!Number.isInteger(sampleRate) || sampleRate <= 0) throw new Error(`sample rate must be a positive integer, got ${sampleRate}`);
  const dataBytes = samples.length * 2;
  const out = new Uint8Array(WAV_HEADER_BYTES + dataBytes);
  const v = new DataView(out.buffer);
  const tag = (at: number, s: string) => { for (let k = 0; k < 4; k++) out[at + k] = s.charCodeAt(k); };
  tag(0, 'RIFF'); v.setUint32(4, 36 + dataBytes, true); tag(8, 'WAVE');
  tag(12, 'fmt '); v.setUint32(16, 16, true);
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * 2, true); // byte rate
  v.setUint16(32, 2, true); // block align
  v.setUint16(34, 16, true); // bits per sample
  tag(36, 'data'); v.setUint32(40, dataBytes, true);
  for (let k = 0; k < samples.length; k++) {
    const x = Math.max(-1, Math.min(1, samples[k]!));
    v.setInt16(WAV_HEADER_BYTES + 2 * k, Math.round(x * PCM16_MAX), true);
  }
  return out;
}

/** Base64 of bytes, in chunks (String.fromCharCode with one huge spread overflows the stack). */
export function toBase64(b: Uint8Array): string {
  let s = '';
  const CHUNK = 0x8000;
  for (let k = 0; k < b.length; k += CHUNK) s += String.fromCharCode(...b.subarray(k, k + CHUNK));
  return btoa(s);
}
