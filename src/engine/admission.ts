// Server admission backed by the engine, for a server that takes an `Admission` (admit(bytes) → ticket with
// turn/resize/release; waiting/running; shutdown). The engine runs requests together, so a ticket's turn comes
// at once; the only refusal here is "the engine is full" (running + waiting at its limits), raised through the
// server's own error type so the envelope and Retry-After stay the server's business:
//
//   new ChatServer(model, { admission: new EngineAdmission(model.engine, (msg) => new HttpError(429, 'rate_limit_error', msg, null, 'queue_full', { 'retry-after': '1' })) })
import type { Engine } from './engine.js';

export interface EngineTicket {
  turn(signal: AbortSignal): Promise<void>;
  resize(bytes: number): void;
  release(): void;
}

export class EngineAdmission {
  private admitted = 0;
  private closed = false;

  constructor(private readonly engine: Engine, private readonly busy: (message: string) => Error, private readonly closedError: (message: string) => Error = busy) {}

  /** Requests admitted whose generation has not started in the engine yet (media still decoding, or queued there). */
  get waiting(): number {
    return Math.max(0, this.admitted - this.running);
  }
  get running(): number {
    return Math.min(this.engine.load, this.engine.limits.maxRunning);
  }

  admit(_bytes: number): EngineTicket {
    if (this.closed) throw this.closedError('the server is shutting down');
    const cap = this.engine.limits.maxRunning + this.engine.limits.maxWaiting;
    if (this.admitted >= cap) throw this.busy(`the engine is busy (${this.admitted} requests admitted, limit ${cap} = ${this.engine.limits.maxRunning} running + ${this.engine.limits.maxWaiting} waiting); retry later`);
    this.admitted++;
    let released = false;
    return {
      turn: async (signal) => {
        if (this.closed) throw this.closedError('the server is shutting down; this request was not started');
        signal.throwIfAborted();
      },
      resize: () => {},
      release: () => {
        if (released) return;
        released = true;
        this.admitted--;
      },
    };
  }

  shutdown(): void {
    this.closed = true;
  }
}
