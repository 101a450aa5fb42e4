// Admission control: a request is admitted (or refused with 429 + Retry-After) from its headers alone, before
// its body is read or its media decoded. The engine scheduler replaces QueueAdmission with its own Admission;
// the server only uses this interface.
import { HttpError } from './http.js';

export interface AdmissionTicket {
  /** Resolves when the request may use the model; rejects with 503 on shutdown or when `signal` aborts. */
  turn(signal: AbortSignal): Promise<void>;
  /** The body turned out smaller/larger than declared: adjust the bytes held (may throw 429). */
  resize(bytes: number): void;
  /** Frees the slot and the bytes; idempotent. */
  release(): void;
}

export interface Admission {
  /** Admit a request that will hold about `bytes` while it waits, or throw HttpError 429 with Retry-After. */
  admit(bytes: number): AdmissionTicket;
  /** Requests admitted and not yet running. */
  readonly waiting: number;
  readonly running: number;
  /** Stop admitting; tickets still waiting for their turn are refused with 503. */
  shutdown(): void;
}

export interface QueueAdmissionOptions {
  /** Requests allowed to wait while one runs (default 16). */
  maxQueue?: number;
  /** Bytes of request bodies held by waiting requests (default 256 MiB). */
  maxWaitingBytes?: number;
}

const MIB = 1024 * 1024;
const RUN_SECONDS_PRIOR = 5; // Retry-After estimate before any request has finished
const RETRY_AFTER_MAX_S = 120;

/** One request runs at a time; others wait in FIFO order, bounded in count and in held bytes. */
export class QueueAdmission implements Admission {
  private readonly maxQueue: number;
  private readonly maxBytes: number;
  private readonly admitted = new Set<Ticket>();
  private readonly fifo: Ticket[] = [];
  private runningTicket: Ticket | null = null;
  private heldBytes = 0;
  private closed = false;
  private avgRunS = RUN_SECONDS_PRIOR;

  constructor(opts: QueueAdmissionOptions = {}) {
    this.maxQueue = opts.maxQueue ?? 16;
    this.maxBytes = opts.maxWaitingBytes ?? 256 * MIB;
  }

  get waiting(): number { return this.admitted.size - (this.runningTicket ? 1 : 0); }
  get running(): number { return this.runningTicket ? 1 : 0; }

  admit(bytes: number): AdmissionTicket {
    if (this.closed) throw new HttpError(503, 'server_error', 'the server is shutting down', null, 'shutting_down');
    // A request may always run when the model is idle and nobody waits; otherwise it counts against the queue.
    const idle = !this.runningTicket && this.admitted.size === 0;
    if (!idle && this.waiting >= this.maxQueue) throw this.busy(`the model is busy and ${this.waiting} requests are already waiting`);
    if (!idle && this.heldBytes + bytes > this.maxBytes) throw this.busy(`waiting requests already hold ${this.heldBytes} bytes (limit ${this.maxBytes})`);
    const t = new Ticket(this, bytes);
    this.admitted.add(t);
    this.heldBytes += bytes;
    return t;
  }

  shutdown(): void {
    this.closed = true;
    for (const t of [...this.fifo]) t.refuse(new HttpError(503, 'server_error', 'the server is shutting down; this request was not started', null, 'shutting_down'));
    this.fifo.length = 0;
  }

  private busy(why: string): HttpError {
    const s = Math.min(RETRY_AFTER_MAX_S, Math.max(1, Math.ceil(this.avgRunS * (this.waiting + 1))));
    return new HttpError(429, 'rate_limit_error', `${why}; retry after ${s} s`, null, 'queue_full', { 'retry-after': String(s) });
  }

  /** @internal */ request(t: Ticket): void {
    if (this.closed) return t.refuse(new HttpError(503, 'server_error', 'the server is shutting down', null, 'shutting_down'));
    if (!this.runningTicket) this.start(t);
    else this.fifo.push(t);
  }
  /** @internal */ cancel(t: Ticket): void {
    const i = this.fifo.indexOf(t);
    if (i >= 0) this.fifo.splice(i, 1);
  }
  /** @internal */ resizeHeld(t: Ticket, bytes: number): void {
    const next = this.heldBytes - t.bytes + bytes;
    if (bytes > t.bytes && this.admitted.size > 1 && next > this.maxBytes) throw this.busy(`waiting requests would hold ${next} bytes (limit ${this.maxBytes})`);
    this.heldBytes = next;
    t.bytes = bytes;
  }
  /** @internal */ done(t: Ticket): void {
    if (!this.admitted.delete(t)) return;
    this.heldBytes -= t.bytes;
    this.cancel(t);
    if (this.runningTicket === t) {
      this.avgRunS = 0.8 * this.avgRunS + 0.2 * ((performance.now() - t.startedAt) / 1000);
      this.runningTicket = null;
      const next = this.fifo.shift();
      if (next) this.start(next);
    }
  }
  private start(t: Ticket): void {
    this.runningTicket = t;
    t.startedAt = performance.now();
    t.go();
  }
}

class Ticket implements AdmissionTicket {
  startedAt = 0;
  private resolve: (() => void) | null = null;
  private reject: ((e: Error) => void) | null = null;
  constructor(private readonly q: QueueAdmission, public bytes: number) {}

  turn(signal: AbortSignal): Promise<void> {
    return new Promise<void>((ok, fail) => {
      if (signal.aborted) return fail(new HttpError(499, 'invalid_request_error', 'client closed the request', null, 'client_closed'));
      const onAbort = () => { this.q.cancel(this); fail(new HttpError(499, 'invalid_request_error', 'client closed the request while queued', null, 'client_closed')); };
      signal.addEventListener('abort', onAbort, { once: true });
      this.resolve = () => { signal.removeEventListener('abort', onAbort); ok(); };
      this.reject = (e) => { signal.removeEventListener('abort', onAbort); fail(e); };
      this.q.request(this);
    });
  }
  resize(bytes: number): void { this.q.resizeHeld(this, bytes); }
  release(): void { this.q.done(this); }
  /** @internal */ go(): void { this.resolve?.(); }
  /** @internal */ refuse(e: Error): void { this.reject?.(e); }
}
