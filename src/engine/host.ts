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

/** Starts the engine worker; resolves once it has loaded the model. */
export async function workerEngine(init: WorkerInit, onProgress?: (p: unknown) => void): Promise<{ engine: Engine; ready: WorkerReady; worker: Worker }> {
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
  worker.on('message', (m: FromEngine) => listener?.(m));
  worker.unref(); // an idle engine does not keep the process alive
  const port: EnginePort = {
    post: (m, transfer) => worker.postMessage(m, transfer ?? []),
    onMessage: (cb) => (listener = cb),
    setBusy: (busy) => (busy ? worker.ref() : worker.unref()),
    close: async () => { closing = true; await worker.terminate(); },
  };
  const engine = new Engine(port, ready.settings);
  // A worker that dies (out of memory, a native crash) fails the requests in flight instead of hanging them.
  worker.on('error', (e) => engine.failAll(`the engine worker failed: ${e.message}`));
  worker.on('exit', (code) => { if (!closing) engine.failAll(`the engine worker exited (code ${code})`); });
  return { engine, ready, worker };
}
