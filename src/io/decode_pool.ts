// Decoding of images and audio in a worker thread, so a large JPEG or a long MP3 never blocks the event loop
// (the server's /health keeps answering). One worker, jobs in order; it is stopped after a short idle spell so
// the memory its decoders grew (WASM heaps) goes back to the system, and restarted on the next job.
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { MediaError } from './media.js';
import type { RgbImage } from './image.js';
import type { AudioData } from './audio.js';
import type { DecodeJob, DecodeReply } from './decode_worker.js';
import type { PreparedBody } from './body_prep.js';

export interface DecodePoolOptions {
  /** A job running longer than this is stopped (the worker is terminated) with a MediaError 'timeout'. */
  timeoutMs?: number;
  /** Idle time after which the worker is terminated (default 2000 ms). */
  idleMs?: number;
}

interface Pending { resolve: (r: DecodeReply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; worker: Worker }

export class DecodePool {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  constructor(private readonly opts: DecodePoolOptions = {}) {}

  decodeImage(bytes: Uint8Array, maxPixels?: number): Promise<RgbImage> {
    return this.run({ kind: 'image', bytes, ...(maxPixels !== undefined ? { maxPixels } : {}) }).then((r) => (r as { image: RgbImage }).image);
  }

  decodeAudio(bytes: Uint8Array): Promise<AudioData> {
    return this.run({ kind: 'audio', bytes }).then((r) => (r as { audio: AudioData }).audio);
  }

  /**
   * A large request body prepared off the main thread (a 16 MiB JSON.parse stalls the event loop): parsed, its
   * text counted, and its big base64 media decoded into blobs (see body_prep.ts). `bytes` is moved, not copied.
   */
  prepareBody(bytes: Uint8Array, marker: string, maxChars: number): Promise<PreparedBody> {
    return this.run({ kind: 'body', bytes, marker, maxChars }, true).then((r) => (r as { body: PreparedBody }).body);
  }

  /** Base64 (standard or URL-safe) → bytes, off the main thread. */
  decodeBase64(text: string): Promise<Uint8Array> {
    return this.run({ kind: 'base64', text }).then((r) => (r as { bytes: Uint8Array }).bytes);
  }

  /** Stop the worker now (pending jobs fail). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private run(job: Omit<DecodeJob, 'id'>, move = false): Promise<DecodeReply> {
    // Jobs run one at a time: peak memory is one decode, and a timeout kills only its own job.
    const p = this.chain.then(() => this.runNow(job, move));
    this.chain = p.catch(() => undefined);
    return p;
  }

  private runNow(job: Omit<DecodeJob, 'id'>, move: boolean): Promise<DecodeReply> {
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = null; }
    const w = this.ensureWorker();
    const id = this.nextId++;
    const timeoutMs = this.opts.timeoutMs ?? 60_000;
    return new Promise<DecodeReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new MediaError('timeout', `decoding the ${job.kind} took longer than ${timeoutMs} ms; it was stopped`));
        void this.close();
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, worker: w });
      if (job.bytes) {
        const copy = move && job.bytes.byteOffset === 0 && job.bytes.byteLength === job.bytes.buffer.byteLength ? job.bytes : new Uint8Array(job.bytes); // a copy (Buffer#slice would share, and detach, the caller's memory) moves to the worker
        w.postMessage({ ...job, id, bytes: copy } satisfies DecodeJob, [copy.buffer as ArrayBuffer]);
      } else w.postMessage({ ...job, id } satisfies DecodeJob);
    }).then((r) => {
      if (!r.ok) {
        if (r.error.code === 'invalid_json' || r.error.name === 'SyntaxError') throw Object.assign(new SyntaxError(r.error.message), { code: 'invalid_json' });
        throw new MediaError(r.error.code ?? 'decode_failed', r.error.message);
      }
      return r;
    }).finally(() => this.armIdle());
  }

  private armIdle(): void {
    if (this.pending.size) return;
    this.idleTimer = setTimeout(() => void this.close(), this.opts.idleMs ?? 2000);
    this.idleTimer.unref();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = import.meta.url.endsWith('.ts') ? sourceWorker() : new Worker(new URL('./decode_worker.js', import.meta.url));
    w.unref();
    w.on('message', (r: DecodeReply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      clearTimeout(p.timer);
      p.resolve(r);
    });
    const failAll = (e: Error) => {
      if (this.worker === w) this.worker = null;
      for (const [id, p] of this.pending) { if (p.worker !== w) continue; clearTimeout(p.timer); p.reject(new MediaError('decode_failed', `decoder stopped: ${e.message}`)); this.pending.delete(id); }
    };
    w.on('error', failAll);
    w.on('exit', (code) => failAll(new Error(`worker exited with code ${code}`)));
    this.worker = w;
    return w;
  }
}

/** Running from TypeScript sources (tests, tsx): the worker registers tsx's loader before importing its module. */
function sourceWorker(): Worker {
  const api = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const mod = new URL('./decode_worker.ts', import.meta.url).href;
  return new Worker(`import(${JSON.stringify(api)}).then((t) => { t.register(); return import(${JSON.stringify(mod)}); });`, { eval: true });
}
