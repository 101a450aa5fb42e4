// The scheduler's message loop, shared by both hosts: the inline host (same thread; tests, research) and the
// worker host (a worker_thread that owns the model; the server and the library). Messages in: submit, abort,
// stats; events out: tokens, done, errors. Between steps it yields to its event loop so messages (a new request,
// an abort) are seen within one step.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Scheduler } from './scheduler.js';
import { EngineError, type BatchModel, type EngineEvent, type EngineRequest, type EngineSettings, type EngineStats } from './types.js';

export type ToEngine =
  | { type: 'submit'; req: EngineRequest }
  | { type: 'abort'; id: number }
  | { type: 'stats'; id: number }
  | { type: 'close' };

export type FromEngine = EngineEvent | { type: 'stats'; id: number; stats: EngineStats } | { type: 'closed' };

export class EngineLoop {
  readonly scheduler: Scheduler;
  private running = false;
  private closed = false;

  constructor(model: BatchModel, settings: EngineSettings, private readonly post: (m: FromEngine) => void) {
    this.scheduler = new Scheduler(model, settings, (ev) => post(ev));
  }

  handle(m: ToEngine): void {
    switch (m.type) {
      case 'submit':
        try {
          this.scheduler.submit(m.req);
        } catch (e) {
          this.post({ type: 'error', id: m.req.id, error: toErrorInfo(e) });
          return;
        }
        void this.run();
        return;
      case 'abort':
        this.scheduler.abort(m.id);
        return;
      case 'stats':
        this.post({ type: 'stats', id: m.id, stats: this.scheduler.stats() });
        return;
      case 'close':
        this.closed = true;
        this.post({ type: 'closed' });
        return;
    }
  }

  /** Steps while there is work; one forward per turn of the event loop. */
  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (!this.closed && this.scheduler.hasWork) {
        try {
          if (!this.scheduler.step()) break;
        } catch (e) {
          // A failed forward (bad media, a backend error) fails every request in the batch rather than the engine.
          this.scheduler.failAll(toErrorInfo(e));
        }
        await yieldToEventLoop();
      }
    } finally {
      this.running = false;
    }
  }
}

export function toErrorInfo(e: unknown): import('./types.js').EngineErrorInfo {
  if (e instanceof EngineError) return e.toInfo();
  const err = e as Error & { code?: string };
  const user = err?.name === 'ValidationError' || err?.name === 'PromptError' || err?.name === 'MediaError';
  return { name: err?.name ?? 'Error', message: err?.message ?? String(e), status: user ? 400 : 500, code: err?.code ?? null };
}
