// Strict weight loading. Modules ask for each tensor by checkpoint name and expected shape; problems are
// collected (not thrown one by one) so `finish()` reports every missing, mis-shaped and unused key at once.
import { isQuantDType, type QuantDType } from '../tensor/dtype.js';
import { numel, Tensor } from '../tensor/tensor.js';
import { rawToF32, type SafetensorsCheckpoint, type StTensorInfo } from '../io/safetensors.js';
import { formatOf } from '../quant/index.js';

/** How a tensor should be held in memory once loaded. */
export type StorageDType = 'f32' | 'bf16' | QuantDType;

/** Decides per tensor how it is stored: the model never names a format, this policy does. */
export type StoragePolicy = (name: string, shape: readonly number[]) => StorageDType;

export const KEEP_F32: StoragePolicy = () => 'f32';
/** Largest bf16 tensor read through the reused staging buffer before ISQ (Phi-4-mini's gate_up is 96 MiB). */
const STAGING_MAX_BYTES = 128 * 2 ** 20;

export interface WeightSource {
  /** The tensor `name` with the given shape, stored as the policy says (or `as`, which wins). */
  take(name: string, shape: readonly number[], as?: StorageDType): Tensor;
  /** Like take, but absent is fine (returns null). */
  takeOptional(name: string, shape: readonly number[], as?: StorageDType): Tensor | null;
  /** Names the model knows it does not use (e.g. SigLIP's head); they are not reported as unused. */
  ignore(pred: (name: string) => boolean): void;
  has(name: string): boolean;
  /**
   * Lazy loading (nn/lazy_weights.ts): checks now every tensor `build` takes (present, right shape), reads
   * them on the part's first get(). Absent: parts are built at once (see deferOrBuild).
   */
  defer?<T>(what: string, build: (ws: WeightSource) => T): Deferred<T>;
}

/** A part of a model (an encoder, an adapter) that may be read on first use. */
export interface Deferred<T> {
  /** Whether its weights are in memory. */
  readonly loaded: boolean;
  /** The part, reading its weights first if they were deferred. */
  get(): T;
}

export class WeightLoadError extends Error {
  override name = 'WeightLoadError';
  constructor(readonly missing: string[], readonly misshaped: string[], readonly unused: string[], where: string) {
    const parts: string[] = [];
    if (missing.length) parts.push(`${missing.length} missing:\n  ${missing.join('\n  ')}`);
    if (misshaped.length) parts.push(`${misshaped.length} with the wrong shape:\n  ${misshaped.join('\n  ')}`);
    if (unused.length) parts.push(`${unused.length} unused:\n  ${unused.join('\n  ')}`);
    super(`checkpoint ${where} does not match the model:\n${parts.join('\n')}`);
  }
}

/** Raw source of named tensors (one checkpoint, or several merged, possibly renamed). */
export interface TensorProvider {
  names(): string[];
  info(name: string): Pick<StTensorInfo, 'dtype' | 'shape'>;
  /** f32 values of the tensor. */
  readF32(name: string): Float32Array;
  /** Raw bytes (for keeping bf16 as is), in a new buffer or in `into` (exactly the tensor's size). */
  readRaw(name: string, into?: Uint8Array): Uint8Array;
  readonly where: string;
  /** For pre-quantized checkpoints: the block format and logical [rows, K] shape of a stored U8 tensor. */
  quantInfo?(name: string): { dtype: QuantDType; shape: number[] } | undefined;
}

export function checkpointProvider(ck: SafetensorsCheckpoint, where: string): TensorProvider {
  return { names: () => ck.names(), info: (n) => ck.info(n), readF32: (n) => ck.readF32(n), readRaw: (n, into) => ck.readRaw(n, into), where };
}

export interface LoadReport {
  /** Bytes held per storage dtype after loading. */
  bytes: Record<string, number>;
  /** Tensor count per storage dtype. */
  counts: Record<string, number>;
}

/**
 * Quantizes a row-major [rows, k] f32 matrix into rows · k / blockSize blocks of `dtype`, byte-identical to
 * formatOf(dtype).quantizeRow per row (e.g. `(d, s, r, k) => nativeBackend.quantizeRows(d, s, r, k)`).
 */
export type RowQuantizer = (dtype: QuantDType, src: Float32Array, rows: number, k: number) => Uint8Array;

export interface StrictWeightsOptions {
  /** A faster ISQ (the native addon's); the TypeScript quantizers of src/quant are the default. */
  quantize?: RowQuantizer;
  /**
   * Called once for every quantized weight (ISQ'd or pre-quantized); returns the tensor the model keeps. The
   * native backend backs it with huge pages (decode streams weights from DRAM, and huge pages spare a TLB miss
   * per 4 KiB) and converts it in place to the row order its kernels read (src/quant/interleave.ts).
   */
  place?: (t: Tensor) => Tensor;
  /**
   * Plain (unquantized) tensors the backend keeps in a layout of its own, by checkpoint name (the native backend's
   * LoRA factors, column-major): `place` copies each into memory of its own and returns the tensor the model
   * keeps, so their bytes are read into the reused staging buffer, sparing a fresh buffer's page faults.
   */
  placePlain?: { wants: (name: string) => boolean; place: (t: Tensor) => Tensor };
  /** Memory for a pre-quantized weight's bytes (the native backend's allocWeights: huge pages from the start). */
  alloc?: (bytes: number) => Uint8Array;
  /**
   * Memory for a bf16 weight kept as stored (the encoders' linears; the native backend cuts it from huge-page
   * slabs): read into fresh 4 KiB pages, their faults and zeroing took two fifths of the audio encoder's first read.
   */
  allocPlain?: (bytes: number) => Uint8Array;
  /**
   * ISQ straight from a bf16 checkpoint's raw bits (same bytes as `quantize` on the widened values): no f32
   * copy of the tensor is made, which saves a pass over 4 bytes per weight and keeps peak RSS down.
   */
  quantizeBf16?: (dtype: QuantDType, bits: Uint16Array, rows: number, k: number) => Uint8Array;
}

export class StrictWeights implements WeightSource {
  private readonly used = new Set<string>();
  private readonly missing: string[] = [];
  private readonly misshaped: string[] = [];
  private readonly ignored: Array<(n: string) => boolean> = [];

  constructor(private readonly src: TensorProvider, private readonly policy: StoragePolicy = KEEP_F32, private readonly options: StrictWeightsOptions = {}, readonly report: LoadReport = { bytes: {}, counts: {} }) {}

  /** The same policy and options over another provider (a reopened checkpoint), counting into this report. */
  withSource(src: TensorProvider): StrictWeights {
    return new StrictWeights(src, this.policy, this.options, this.report);
  }

  has(name: string): boolean {
    return this.hasName(name);
  }

  ignore(pred: (name: string) => boolean): void {
    this.ignored.push(pred);
  }

  takeOptional(name: string, shape: readonly number[], as?: StorageDType): Tensor | null {
    if (!this.hasName(name)) return null;
    return this.take(name, shape, as);
  }

  /**
   * What take() checks before reading, from the header alone: `name` is there with `shape` (a pre-quantized
   * tensor: its logical [rows, K], stored in at least the bytes its format takes). Problems are recorded for
   * finish(); null when there was one. Lazy loading validates deferred parts with this at load time.
   */
  check(name: string, shape: readonly number[]): { q: { dtype: QuantDType; shape: number[] } | undefined; info: Pick<StTensorInfo, 'dtype' | 'shape'> } | null {
    if (!this.hasName(name)) {
      this.missing.push(`${name} ${JSON.stringify(shape)}`);
      return null;
    }
    this.used.add(name);
    const q = this.src.quantInfo?.(name);
    const stored = this.src.info(name);
    const logical = q ?? stored;
    const same = logical.shape.length === shape.length && logical.shape.every((d, i) => d === shape[i]);
    if (!same) {
      this.misshaped.push(`${name}: checkpoint ${JSON.stringify(logical.shape)}, model expects ${JSON.stringify(shape)}`);
      return null;
    }
    const bad = q && quantBytesProblem(q, stored);
    if (bad) {
      this.misshaped.push(`${name}: ${bad}`);
      return null;
    }
    return { q, info: stored };
  }

  take(name: string, shape: readonly number[], as?: StorageDType): Tensor {
    const checked = this.check(name, shape);
    if (!checked) return Tensor.zeros(shape);
    const { q, info } = checked;
    if (q) {
      // Already quantized on disk: taken as is, whatever the policy (re-quantizing would only lose accuracy).
      const raw = this.src.readRaw(name, this.options.alloc?.(info.shape[0]!));
      const t = this.placed(new Tensor(q.dtype, shape, raw));
      this.count(t);
      return t;
    }
    let store = as ?? this.policy(name, shape);
    if (isQuantDType(store) && (shape.length !== 2 || shape[1]! % formatOf(store).blockSize !== 0)) store = 'f32';
    const loaded = this.load(name, shape, info.dtype, store);
    const t = isQuantDType(loaded.dtype) ? this.placed(loaded) : this.options.placePlain?.wants(name) ? this.options.placePlain.place(loaded) : loaded;
    if (t.data.buffer === this.stagingBuf?.buffer) throw new Error(`internal: ${name} was read into the staging buffer but not copied out by placePlain`);
    this.count(t);
    return t;
  }

  private placed(t: Tensor): Tensor {
    return this.options.place ? this.options.place(t) : t;
  }

  private count(t: Tensor): void {
    this.report.bytes[t.dtype] = (this.report.bytes[t.dtype] ?? 0) + t.data.byteLength;
    this.report.counts[t.dtype] = (this.report.counts[t.dtype] ?? 0) + 1;
  }

  /**
   * For a part read on its own (lazy loading): throws a WeightLoadError listing every missing and mis-shaped
   * tensor it took. Unused tensors are not its business (the whole checkpoint was checked at load).
   */
  finishPart(): void {
    this.stagingBuf = null;
    if (this.missing.length || this.misshaped.length) throw new WeightLoadError(this.missing, this.misshaped, [], this.src.where);
  }

  /** Throws a WeightLoadError listing every missing, mis-shaped and unused tensor, if any. */
  finish(): LoadReport {
    this.stagingBuf = null;
    const unused = this.src.names().filter((n) => !this.used.has(n) && !this.ignored.some((p) => p(n))).sort();
    if (this.missing.length || this.misshaped.length || unused.length) throw new WeightLoadError(this.missing, this.misshaped, unused, this.src.where);
    return this.report;
  }

  private nameSet: Set<string> | null = null;
  private hasName(name: string): boolean {
    this.nameSet ??= new Set(this.src.names());
    return this.nameSet.has(name);
  }

  private stagingBuf: Uint8Array | null = null;
  /**
   * A reused buffer for bf16 bytes that are quantized right away: a fresh one per tensor costs a page fault and
   * zeroing per 4 KiB page, about as long as the read itself. Larger tensors (the embedding) get their own
   * buffer, so the extra peak memory stays at STAGING_MAX_BYTES.
   */
  private staging(bytes: number): Uint8Array | undefined {
    if (bytes > STAGING_MAX_BYTES) return undefined;
    if (!this.stagingBuf || this.stagingBuf.length < bytes) this.stagingBuf = new Uint8Array(Math.min(STAGING_MAX_BYTES, Math.max(bytes, 2 * (this.stagingBuf?.length ?? 0))));
    return this.stagingBuf.subarray(0, bytes);
  }

  private load(name: string, shape: readonly number[], srcDtype: string, store: StorageDType): Tensor {
    if (store === 'bf16' && srcDtype === 'BF16') {
      const bytes = numel(shape) * 2;
      const raw = this.src.readRaw(name, this.options.placePlain?.wants(name) ? this.staging(bytes) : this.options.allocPlain?.(bytes));
      return new Tensor('bf16', shape, new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2));
    }
    const [rows, k] = shape as [number, number];
    if (isQuantDType(store) && srcDtype === 'BF16' && this.options.quantizeBf16) {
      const raw = this.src.readRaw(name, this.staging(rows * k * 2));
      return new Tensor(store, shape, this.options.quantizeBf16(store, new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2), rows, k));
    }
    const f = this.src.readF32(name);
    if (store === 'f32' || store === 'bf16') return new Tensor('f32', shape, f);
    if (this.options.quantize) return new Tensor(store, shape, this.options.quantize(store, f, rows, k));
    const fmt = formatOf(store);
    const rb = (k / fmt.blockSize) * fmt.bytesPerBlock;
    const q = new Uint8Array(rows * rb);
    for (let r = 0; r < rows; r++) fmt.quantizeRow(f.subarray(r * k, (r + 1) * k), q.subarray(r * rb, (r + 1) * rb));
    return new Tensor(store, shape, q);
  }
}

/** Why a pre-quantized tensor's stored bytes cannot hold its logical shape, or null when they can. */
function quantBytesProblem(q: { dtype: QuantDType; shape: number[] }, stored: Pick<StTensorInfo, 'dtype' | 'shape'>): string | null {
  if (!isQuantDType(q.dtype)) return `unknown quantized format ${JSON.stringify(q.dtype)} in the checkpoint's quantization table`;
  const f = formatOf(q.dtype), [rows, k] = q.shape as [number, number];
  if (q.shape.length !== 2 || k % f.blockSize !== 0) return `${q.dtype} needs [rows, K] with K a multiple of ${f.blockSize}, the table says ${JSON.stringify(q.shape)}`;
  const need = rows * (k / f.blockSize) * f.bytesPerBlock, have = stored.shape.reduce((a, b) => a * b, 1);
  // At least `need` bytes, the rule the quantized Tensor itself enforces when the data is read.
  return stored.dtype === 'U8' && have >= need ? null : `${q.dtype} ${JSON.stringify(q.shape)} takes ${need} bytes, the checkpoint stores ${stored.dtype}${JSON.stringify(stored.shape)}`;
}

/** Test helper: a provider over in-memory f32 tensors. */
export function memoryProvider(tensors: Record<string, { shape: number[]; data: Float32Array }>, where = 'memory'): TensorProvider {
  return {
    where,
    names: () => Object.keys(tensors),
    info: (n) => ({ dtype: 'F32', shape: tensors[n]!.shape }),
    readF32: (n) => tensors[n]!.data,
    readRaw: (n) => new Uint8Array(tensors[n]!.data.buffer),
  };
}
