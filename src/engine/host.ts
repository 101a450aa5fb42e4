// The two hosts of the scheduler. inlineEngine: same thread (tests, research, single-process tools); the event
// loop still turns between steps, but a forward blocks it. workerEngine: a worker_thread that loads and owns
// the model; the main thread only exchanges small messages (ids in, token ids out) and stays responsive.
import { Worker } from 'node:worker_threads';
import { Engine, type EnginePort } from './engine.js';
import { EngineLoop, type FromEngine, type ToEngine } from './loop.js';
import type { BatchModel, EngineSettings } from './types.js';
import type { LoadedModel, LoadOptions } from '../api/load.js';
import type { EngineOptions } from './settings.js';

export function inlineEngine(model: BatchModel, settings: EngineSettings): { engine: Engine; loop: EngineLoop } {
  let listener: ((m: FromEngine) => void) | null = null;
  // Events are delivered on a later microtask, as a worker's would be: a consumer never re-enters the loop.
  const loop = new EngineLoop(model, settings, (m) => queueMicrotask(() => listener?.(m)));
  const port: EnginePort = {
    post: (m: ToEngine) => loop.handle(m),
    onMessage: (cb) => (listener = cb),
    close: async () => loop.handle({ type: 'close' }),
  };
  return { engine: new Engine(port, settings), loop };
}

export interface WorkerInit {
  dir: string;
  load: Omit<LoadOptions, 'onProgress'>;
  /** Sized in the worker once the model (its KV bytes per token) is known. */
  engine: EngineOptions;
}

export interface WorkerReady {
  type: 'ready';
  settings: EngineSettings;
  kvBytesPerToken: number;
  describe: string;
  /** How the pool was sized (printed at start-up). */
  kvNote: string;
  report: LoadedModel['report'];
}

/** Asks the engine worker to save the model it holds (Phi4MM.saveQuantized), and its answer. */
export interface SaveRequest { type: 'save'; id: number; outDir: string }
export interface SaveReply { type: 'saved'; id: number; error?: { name: string; message: string } }

/** Starts the engine worker; resolves once it has loaded the model. `save` writes the worker's copy of the weights. */
export async function workerEngine(init: WorkerInit, onProgress?: (p: unknown) => void): Promise<{ engine: Engine; ready: WorkerReady; worker: Worker; save: (outDir: string) => Promise<void> }> {
  const ts = import.meta.url.endsWith('.ts');
  // From dist/ the worker is plain JS; from sources (tests, tsx) it registers tsx's loader in the worker first.
  const worker = ts
    ? new Worker(`import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(new URL('./worker.ts', import.meta.url).href)}); })`, { eval: true, workerData: init })
    : new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
  const ready = await new Promise<WorkerReady>((ok, fail) => {
    const onMsg = (m: { type: string; error?: { name: string; message: string } } & Record<string, unknown>) => {
      if (m.type === 'progress') onProgress?.(m['progress']);
      else if (m.type === 'ready') { worker.off('message', onMsg); worker.off('error', fail); ok(m as unknown as WorkerReady); }
      else if (m.type === 'load-error') {
        const e = new Error(m.error!.message);
        e.name = m.error!.name;
        void worker.terminate();
        fail(e);
      }
    };
    worker.on('message', onMsg);
    worker.once('error', fail);
  });
  let listener: ((m: FromEngine) => void) | null = null;
  let closing = false;
  let busy = false; // requests in flight (setBusy); with saves pending, the worker keeps the process alive
  const saves = new Map<number, { ok: () => void; fail: (e: Error) => void }>();
  let nextSave = 0;
  worker.on('message', (m: FromEngine | SaveReply) => {
    if (m.type !== 'saved') return listener?.(m);
    const s = saves.get(m.id);
    saves.delete(m.id);
    if (saves.size === 0 && !busy) worker.unref();
    if (!m.error) return s?.ok();
    const e = new Error(m.error.message);
    e.name = m.error.name;
    s?.fail(e);
  });
  worker.unref(); // an idle engine does not keep the process alive
  const port: EnginePort = {
    post: (m, transfer) => worker.postMessage(m, transfer ?? []),
    onMessage: (cb) => (listener = cb),
    setBusy: (b) => { busy = b; if (b) worker.ref(); else if (saves.size === 0) worker.unref(); },
    close: async () => { closing = true; await worker.terminate(); },
  };
  const engine = new Engine(port, ready.settings);
  // A worker that dies (out of memory, a native crash) fails the requests in flight instead of hanging them.
  const failSaves = (why: string) => { for (const s of saves.values()) s.fail(new Error(`saveQuantized: ${why}`)); saves.clear(); };
  worker.on('error', (e) => { engine.failAll(`the engine worker failed: ${e.message}`); failSaves(`the engine worker failed: ${e.message}`); });
  worker.on('exit', (code) => {
    if (!closing) engine.failAll(`the engine worker exited (code ${code})`);
    failSaves(closing ? 'the model was closed before the save finished' : `the engine worker exited (code ${code})`);
  });
  const save = (outDir: string) => new Promise<void>((ok, fail) => {
    if (closing) return fail(new Error('saveQuantized: the model is closed'));
    const id = nextSave++;
    saves.set(id, { ok, fail });
    worker.ref(); // the write keeps the process alive until it is done
    worker.postMessage({ type: 'save', id, outDir } satisfies SaveRequest);
  });
  return { engine, ready, worker, save };
}
