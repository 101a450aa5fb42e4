// Runs prep.ts in one worker thread, so tokenizing a huge prompt or cropping a 36 MP image never blocks the
// caller's event loop. Jobs run in order; the worker starts on the first job and stays until close(), holding the
// process open only while a job is in flight. It loads its own tokenizer (1–2 s and about 120 MiB, off this
// thread) on the first job that asks for ids: media with a short prompt never needs it.
import { Worker } from 'node:worker_threads';
import { PromptError } from '../models/phi4mm/multimodal.js';
import type { ImageProcessorConfig } from '../models/phi4mm/image_processor.js';
import type { PreparedMedia, PrepInput } from './prep.js';

export interface PrepWorkerInit { dir: string; imageCfg: ImageProcessorConfig }
/** `tokenize`: also the ids (the worker loads its tokenizer on the first such job). */
export interface PrepJob { id: number; input: PrepInput; tokenize: boolean }
export type PrepOut = PreparedMedia & { ids?: Int32Array };
export type PrepReply = { id: number; ok: true; prepared: PrepOut } | { id: number; ok: false; error: { name: string; message: string; stack?: string } };

interface Pending { resolve: (p: PrepOut) => void; reject: (e: Error) => void }

/** Error classes rebuilt as themselves, so callers' `instanceof` and the server's status mapping still hold. */
const ERRORS: Record<string, new (message: string) => Error> = { PromptError, RangeError, TypeError };

export class PrepPool {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly init: PrepWorkerInit) {}

  /** Jobs the worker has not answered yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Prepares `input` in the worker: its media, and with `tokenize` its ids. Buffers in `transfer` move there
   * (detached here); other typed arrays are copied, except those over a SharedArrayBuffer, which are shared.
   */
  prepare(input: PrepInput, transfer: ArrayBuffer[] = [], tokenize = true): Promise<PrepOut> {
    if (this.closed) return Promise.reject(new Error('the prompt preparation worker is closed (the model was closed)'));
    const w = this.ensureWorker();
    const id = this.nextId++;
    return new Promise<PrepOut>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) w.ref();
      w.postMessage({ id, input, tokenize } satisfies PrepJob, transfer);
    });
  }

  /** Stops the worker; jobs in flight fail. */
  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    this.failAll(new Error('the prompt preparation worker was closed (the model was closed)'));
    if (w) await w.terminate();
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    if (!this.pending.size) this.worker?.unref();
    return p;
  }

  private failAll(e: Error): void {
    for (const id of [...this.pending.keys()]) this.settle(id)!.reject(e);
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const ts = import.meta.url.endsWith('.ts');
    // From dist/ the worker is plain JS; from sources (tests, tsx) it registers tsx's loader first.
    const w = ts
      ? new Worker(`import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(new URL('./prep_worker.ts', import.meta.url).href)}); })`, { eval: true, workerData: this.init })
      : new Worker(new URL('./prep_worker.js', import.meta.url), { workerData: this.init });
    w.unref();
    w.on('message', (r: PrepReply) => {
      const p = this.settle(r.id);
      if (!p) return;
      if (r.ok) return p.resolve(r.prepared);
      const E = ERRORS[r.error.name];
      const e = E ? new E(r.error.message) : Object.assign(new Error(r.error.message), { name: r.error.name });
      if (r.error.stack) e.stack = r.error.stack;
      p.reject(e);
    });
    // A worker that dies (out of memory) fails its jobs; the next job starts a fresh one.
    const died = (e: Error) => {
      if (this.worker !== w) return;
      this.worker = null;
      this.failAll(new Error(`prompt preparation failed: ${e.message}`));
    };
    w.on('error', died);
    w.on('exit', (code) => died(new Error(`its worker exited with code ${code}`)));
    this.worker = w;
    return w;
  }
}
