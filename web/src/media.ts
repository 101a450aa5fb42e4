// Attachments: files (picked, dropped, pasted) and microphone recordings, turned into what the server decodes.
// Images and audio the server reads (PNG/JPEG/WebP/GIF; WAV/MP3/FLAC/Ogg Vorbis/Opus) go as they are; others are
// converted here (images to PNG through a canvas, audio to 16 kHz mono WAV through decodeAudioData), since the
// server rejects e.g. the WebM/Opus that Chromium's MediaRecorder produces.
import { encodeWav, serverAudioFormat, serverImageFormat, toBase64 } from './formats.js';

/** The audio rate the model works at; converted audio is resampled to it here (smaller uploads). */
const MODEL_SAMPLE_RATE = 16000;

export interface Attachment {
  kind: 'image' | 'audio';
  name: string;
  /** data: URL of the bytes sent (and shown). */
  url: string;
  /** For audio: the input_audio.format. */
  format?: string;
  /** Set when the page converted the file, e.g. "converted from audio/webm". */
  note?: string;
}

export class MediaInputError extends Error {}

export async function fileToAttachment(file: File): Promise<Attachment> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const name = file.name || (file.type.startsWith('image/') ? 'pasted image' : 'audio');
  if (file.type.startsWith('image/') || serverImageFormat(bytes)) return imageAttachment(bytes, file.type, name);
  if (file.type.startsWith('audio/') || file.type.startsWith('video/') || serverAudioFormat(bytes)) return audioAttachment(bytes, file.type, name);
  throw new MediaInputError(`${name}: not an image or audio file (type "${file.type || 'unknown'}")`);
}

async function imageAttachment(bytes: Uint8Array, mime: string, name: string): Promise<Attachment> {
  const fmt = serverImageFormat(bytes);
  if (fmt) return { kind: 'image', name, url: `data:image/${fmt};base64,${toBase64(bytes)}` };
  // HEIC, AVIF, BMP, SVG...: let the browser decode it, send PNG.
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes as BlobPart], { type: mime }));
  } catch {
    throw new MediaInputError(`${name}: this browser cannot read this image (${mime || 'unknown type'}); use PNG, JPEG, WebP or GIF`);
  }
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext('2d')!.drawImage(bitmap, 0, 0);
  bitmap.close();
  return { kind: 'image', name, url: canvas.toDataURL('image/png'), note: `converted from ${mime || 'an unknown type'} to PNG` };
}

async function audioAttachment(bytes: Uint8Array, mime: string, name: string): Promise<Attachment> {
  const fmt = serverAudioFormat(bytes);
  if (fmt) return { kind: 'audio', name, url: `data:${mime || `audio/${fmt}`};base64,${toBase64(bytes)}`, format: fmt };
  const wav = await toWav16k(bytes, name, mime);
  return { kind: 'audio', name, url: `data:audio/wav;base64,${toBase64(wav)}`, format: 'wav', note: `converted from ${mime || 'an unknown type'} to WAV` };
}

/** Decodes anything the browser can play and renders it to 16 kHz mono (OfflineAudioContext mixes down). */
async function toWav16k(bytes: Uint8Array, name: string, mime: string): Promise<Uint8Array> {
  const ctx = new AudioContext();
  let decoded: AudioBuffer;
  try {
    decoded = await ctx.decodeAudioData(bytes.slice().buffer);
  } catch {
    throw new MediaInputError(`${name}: this browser cannot decode this audio (${mime || 'unknown type'}); use WAV, MP3, FLAC, Ogg Vorbis or Opus`);
  } finally {
    void ctx.close();
  }
  const frames = Math.max(1, Math.ceil(decoded.duration * MODEL_SAMPLE_RATE));
  const offline = new OfflineAudioContext(1, frames, MODEL_SAMPLE_RATE);
  const src = offline.createBufferSource();
  src.buffer = decoded;
  src.connect(offline.destination);
  src.start();
  const mono = await offline.startRendering();
  return encodeWav(mono.getChannelData(0), MODEL_SAMPLE_RATE);
}

/** The base64 payload of a data: URL (what input_audio.data carries). */
export function dataUrlPayload(url: string): string {
  return url.slice(url.indexOf(',') + 1);
}

/** A microphone recording in progress; stop() yields it as a WAV attachment. */
export class Recorder {
  private readonly chunks: Blob[] = [];
  private constructor(private readonly stream: MediaStream, private readonly rec: MediaRecorder) {
    rec.addEventListener('dataavailable', (e) => { if (e.data.size) this.chunks.push(e.data); });
  }

  static async start(): Promise<Recorder> {
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      throw new MediaInputError(`This browser allows the microphone only on https:// or http://localhost pages (this page is ${location.origin}). Open it via localhost, or attach an audio file instead.`);
    }
    if (typeof MediaRecorder === 'undefined') throw new MediaInputError('This browser cannot record audio (no MediaRecorder); attach an audio file instead.');
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (e) {
      throw new MediaInputError(`No microphone: ${(e as Error).message || (e as Error).name}`);
    }
    const rec = new MediaRecorder(stream);
    const r = new Recorder(stream, rec);
    rec.start(250);
    return r;
  }

  async stop(): Promise<Attachment> {
    const done = new Promise<void>((ok) => this.rec.addEventListener('stop', () => ok(), { once: true }));
    this.rec.stop();
    await done;
    for (const t of this.stream.getTracks()) t.stop();
    const blob = new Blob(this.chunks, { type: this.rec.mimeType });
    if (!blob.size) throw new MediaInputError('The recording is empty');
    const wav = await toWav16k(new Uint8Array(await blob.arrayBuffer()), 'recording', this.rec.mimeType);
    const stamp = new Date().toLocaleTimeString();
    return { kind: 'audio', name: `recording ${stamp}`, url: `data:audio/wav;base64,${toBase64(wav)}`, format: 'wav' };
  }

  cancel(): void {
    if (this.rec.state !== 'inactive') this.rec.stop();
    for (const t of this.stream.getTracks()) t.stop();
  }
}
