// Lazy loading of model parts (the image/audio encoders, the LoRA adapters): a part is validated at load time
// like any other (every tensor it takes is present with the right shape, checked from the checkpoint header;
// problems join the load's single report) but its tensors are read, converted and quantized only on the
// part's first get(), from the checkpoint opened again for that read. Text-only use never holds them.
//
// How a part is validated without reading: its constructor runs once against a source that checks each name
// and hands back zeros over one shared buffer that nothing writes (see DryRunWeights); that instance is
// dropped. On first use the constructor runs again over the real tensors. Both runs are synchronous, so in
// the engine's worker thread a first image or audio request simply pays the read inside its step.
import { Tensor, numel } from '../tensor/tensor.js';
import type { StrictWeights, Deferred, StorageDType, TensorProvider, WeightSource } from './weights.js';

/** A part built at once: already loaded. */
export function loadedPart<T>(value: T): Deferred<T> {
  return { loaded: true, get: () => value };
}

/** `build` deferred when the source can (LazyWeights), else built now (StrictWeights and other sources). */
export function deferOrBuild<T>(ws: WeightSource, what: string, build: (ws: WeightSource) => T): Deferred<T> {
  return ws.defer ? ws.defer(what, build) : loadedPart(build(ws));
}

export interface LazyWeightsOptions {
  /** Opens the checkpoint again for one deferred part's reads; closed as soon as the part is built. */
  reopen: () => TensorProvider & { close(): void };
  /** Wraps every source that really reads (load.ts records the tensors taken, for saveQuantized). */
  wrap?: (ws: WeightSource) => WeightSource;
  /** Told at load time of each tensor whose read is deferred (progress totals, the load report). */
  onDeferred?: (name: string) => void;
}

/**
 * A WeightSource whose `take` reads now (through `strict`) and whose `defer` validates now and reads later.
 * `strict.finish()` at the end of the load covers both: deferred tensors count as used, and their missing or
 * mis-shaped names are reported with everything else.
 */
export class LazyWeights implements WeightSource {
  private readonly now: WeightSource;

  constructor(private readonly strict: StrictWeights, private readonly options: LazyWeightsOptions) {
    this.now = options.wrap ? options.wrap(strict) : strict;
  }

  take(name: string, shape: readonly number[], as?: StorageDType): Tensor {
    return this.now.take(name, shape, as);
  }
  takeOptional(name: string, shape: readonly number[], as?: StorageDType): Tensor | null {
    return this.now.takeOptional(name, shape, as);
  }
  ignore(pred: (name: string) => boolean): void {
    this.now.ignore(pred);
  }
  has(name: string): boolean {
    return this.now.has(name);
  }

  defer<T>(what: string, build: (ws: WeightSource) => T): Deferred<T> {
    build(new DryRunWeights(this.strict, this.options.onDeferred)); // validation only; the instance is dropped
    return new LazyPart(what, () => {
      const provider = this.options.reopen();
      try {
        const ws = this.strict.withSource(provider);
        const part = build(this.options.wrap ? this.options.wrap(ws) : ws);
        ws.finishPart(); // the names and shapes were checked at load; only a changed checkpoint fails here
        return part;
      } finally {
        provider.close();
      }
    });
  }
}

class LazyPart<T> implements Deferred<T> {
  private value: { part: T } | null = null;

  constructor(readonly what: string, private readonly load: () => T) {}

  get loaded(): boolean {
    return this.value !== null;
  }

  get(): T {
    if (!this.value) {
      try {
        this.value = { part: this.load() };
      } catch (e) {
        // Not cached: a later request tries again (e.g. once the folder is back).
        throw new Error(`reading the ${this.what} on first use failed (load with lazyMedia: false to read everything at start): ${(e as Error).message}`, { cause: e });
      }
    }
    return this.value.part;
  }
}

/**
 * Validates a part's tensors against the header and records them as used, reading nothing. Each take returns
 * zeros of the asked shape as an f32 view of one shared buffer: the constructors it feeds only make views,
 * small copies (biases, norms, conv taps) and reshapes, and pages of a fresh zeroed buffer that are never
 * written do not count towards RSS. (Its dtype is f32 whatever the real storage will be; the constructors do
 * not branch on it.)
 */
class DryRunWeights implements WeightSource {
  private zeros = new Float32Array(0);

  constructor(private readonly strict: StrictWeights, private readonly onDeferred?: (name: string) => void) {}

  take(name: string, shape: readonly number[]): Tensor {
    if (this.strict.check(name, shape)) this.onDeferred?.(name);
    const n = numel(shape);
    if (this.zeros.length < n) this.zeros = new Float32Array(n);
    return new Tensor('f32', shape, this.zeros.subarray(0, n));
  }
  takeOptional(name: string, shape: readonly number[]): Tensor | null {
    return this.strict.has(name) ? this.take(name, shape) : null;
  }
  ignore(pred: (name: string) => boolean): void {
    this.strict.ignore(pred);
  }
  has(name: string): boolean {
    return this.strict.has(name);
  }
}
