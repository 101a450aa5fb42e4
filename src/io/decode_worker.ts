// Worker thread body for decode_pool.ts: decodes one encoded image or audio file per message, off the main thread.
import { parentPort } from 'node:worker_threads';
import { decodeImage } from './image.js';
import { decodeAudio } from './audio.js';

export interface DecodeJob { id: number; kind: 'image' | 'audio'; bytes: Uint8Array; maxPixels?: number }
export type DecodeReply =
  | { id: number; ok: true; image?: { width: number; height: number; data: Uint8Array }; audio?: { samples: Float32Array; sampleRate: number } }
  | { id: number; ok: false; error: { name: string; code?: string; message: string } };

parentPort?.on('message', (job: DecodeJob) => {
  void (async () => {
    try {
      if (job.kind === 'image') {
        const img = decodeImage(job.bytes, job.maxPixels !== undefined ? { maxPixels: job.maxPixels } : {});
        const data = img.data.byteOffset === 0 && img.data.byteLength === img.data.buffer.byteLength ? img.data : img.data.slice();
        parentPort!.postMessage({ id: job.id, ok: true, image: { width: img.width, height: img.height, data } } satisfies DecodeReply, [data.buffer as ArrayBuffer]);
      } else {
        const a = await decodeAudio(job.bytes);
        const samples = a.samples.byteOffset === 0 && a.samples.byteLength === a.samples.buffer.byteLength ? a.samples : a.samples.slice();
        parentPort!.postMessage({ id: job.id, ok: true, audio: { samples, sampleRate: a.sampleRate } } satisfies DecodeReply, [samples.buffer as ArrayBuffer]);
      }
    } catch (e) {
      const err = e as Error & { code?: string };
      parentPort!.postMessage({ id: job.id, ok: false, error: { name: err.name ?? 'Error', message: err.message ?? String(e), ...(err.code ? { code: err.code } : {}) } } satisfies DecodeReply);
    }
  })();
});
