// The request side of the engine: submits requests to the scheduler (in a worker thread or inline) and turns
// its events back into per-request async streams. Runs on the main thread; never touches the model.
import { EngineError, type EngineErrorInfo, type EngineRequest, type EngineStats, type SeqDone } from './types.js';
import type { FromEngine, ToEngine } from './loop.js';
import type { TopLogprob } from '../text/sampler.js';

export type SeqEvent = { type: 'token'; index: number; token: number; cachedTokens?: number; logprob?: number; top?: TopLogprob[] } | { type: 'done'; index: number; done: SeqDone };

/** How the client reaches the scheduler: a MessagePort-like pair. */
export interface EnginePort {
  post(m: ToEngine, transfer?: ArrayBuffer[]): void;
  onMessage(cb: (m: FromEngine) => void): void;
  /** Called when requests start/stop being in flight (a worker host keeps the process alive only while busy). */
  setBusy?(busy: boolean): void;
  close(): Promise<void>;
}

interface Pending {
  events: SeqEvent[];
  error: EngineErrorInfo | null;
  open: number; // sequences not yet done
  wake: (() => void) | null;
}

/** Admission limits as the request side sees them (the scheduler enforces the same ones). */
export interface EngineLimits {
  maxRunning: number;
  maxWaiting: number;
}

export class Engine {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly statsWaiters = new Map<number, (s: EngineStats) => void>();

  constructor(private readonly port: EnginePort, readonly limits: EngineLimits) {
    port.onMessage((m) => this.onMessage(m));
  }

  /**
   * Throws EngineError 429 when the engine already holds as many requests as it may run plus queue: the
   * server calls this before it answers (the scheduler refuses the same way, later, as a backstop).
   */
  admit(): void {
    const cap = this.limits.maxRunning + this.limits.maxWaiting;
    if (this.pending.size >= cap) {
      throw new EngineError(`the engine is busy (${this.pending.size} requests running or waiting, limit ${cap}); retry later`, 429, 'queue_full');
    }
  }

  /** Requests submitted and not finished (running or waiting in the scheduler). */
  get load(): number {
    return this.pending.size;
  }

  /**
   * Submits one request and yields its sequences' tokens and done events as they come (n > 1: interleaved,
   * by index). Aborting the signal frees the request within one scheduler step (its sequences end 'cancelled').
   * Throws EngineError for refused requests (status 400 / 429) and failed ones.
   */
  async *generate(req: Omit<EngineRequest, 'id'>, signal?: AbortSignal, transfer?: ArrayBuffer[]): AsyncGenerator<SeqEvent> {
    if (this.dead) throw new EngineError(this.dead.message, this.dead.status, this.dead.code);
    const id = this.nextId++;
    const p: Pending = { events: [], error: null, open: req.n, wake: null };
    this.track(id, p);
    const onAbort = () => this.port.post({ type: 'abort', id });
    const full: EngineRequest = { ...req, id };
    this.port.post({ type: 'submit', req: full }, transfer);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    let finished = false;
    try {
      for (;;) {
        while (p.events.length) {
          const ev = p.events.shift()!;
          yield ev;
        }
        if (p.error) throw new EngineError(p.error.message, p.error.status, p.error.code);
        if (p.open === 0) { finished = true; return; }
        await new Promise<void>((r) => (p.wake = r));
        p.wake = null;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      // The consumer stopped early (break, throw): free the sequences.
      if (!finished && !p.error && p.open > 0) this.port.post({ type: 'abort', id });
      this.untrack(id);
    }
  }

  stats(): Promise<EngineStats> {
    const id = this.nextId++;
    return new Promise((ok) => {
      this.statsWaiters.set(id, ok);
      this.port.setBusy?.(true);
      this.port.post({ type: 'stats', id });
    });
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.pending.size;
  }

  private track(id: number, p: Pending): void {
    this.pending.set(id, p);
    if (this.pending.size === 1) this.port.setBusy?.(true);
  }

  private untrack(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0 && this.statsWaiters.size === 0) this.port.setBusy?.(false);
  }

  /** Stops the scheduler (a worker host terminates its thread). Requests in flight and later ones fail with 503. */
  close(): Promise<void> {
    // Without this a request submitted after close would wait forever on a scheduler that is gone.
    this.failAll('the engine was closed', 503, 'engine_closed');
    return this.port.close();
  }

  /** The scheduler is gone (the worker died, or close()): every request in flight and every later one fails with this error. */
  failAll(message: string, status = 500, code = 'engine_failed'): void {
    for (const p of this.pending.values()) {
      if (p.error || p.open === 0) continue;
      p.error = { name: 'EngineError', message, status, code };
      p.wake?.();
    }
    for (const [id, ok] of this.statsWaiters) {
      ok({ running: 0, waiting: 0, blocksTotal: 0, blocksFree: 0, blocksCached: 0, blocksInUse: 0, blockSize: 0, kvBytesPerToken: 0, mediaCacheBytes: 0, mediaCacheEntries: 0, steps: 0 });
      this.statsWaiters.delete(id);
    }
    this.dead ??= { message, status, code };
  }

  private dead: { message: string; status: number; code: string } | null = null;

  private onMessage(m: FromEngine): void {
    if (m.type === 'stats') {
      this.statsWaiters.get(m.id)?.(m.stats);
      this.statsWaiters.delete(m.id);
      if (this.pending.size === 0 && this.statsWaiters.size === 0) this.port.setBusy?.(false);
      return;
    }
    if (m.type === 'closed') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === 'error') p.error = m.error;
    else if (m.type === 'token') p.events.push({ type: 'token', index: m.index, token: m.token, ...(m.cachedTokens !== undefined ? { cachedTokens: m.cachedTokens } : {}), ...(m.logprob !== undefined ? { logprob: m.logprob } : {}), ...(m.top ? { top: m.top } : {}) });
    else {
      p.events.push({ type: 'done', index: m.index, done: m.done });
      p.open--;
    }
    p.wake?.();
  }
}
