// Loading a checkpoint folder (either layout) or a hub id: options, ISQ storage policy, download, the weights.
// Shared by the library (research access, the inline engine) and the engine worker, which loads its own copy.
import type { ComputePrecision } from '../tensor/precision.js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { createBackend, type Backend, type BackendKind } from '../tensor/backend.js';
import { StrictWeights, type LoadReport, type StorageDType, type StoragePolicy, type StrictWeightsOptions, type TensorProvider, type WeightSource } from '../nn/weights.js';
import { LazyWeights } from '../nn/lazy_weights.js';
import type { Tensor } from '../tensor/tensor.js';
import { openCheckpoint, type CheckpointProvider } from '../models/phi4mm/checkpoint.js';
import { Phi4MMForCausalLM } from '../models/phi4mm/model.js';
import { snapshotDownload } from '../io/hub.js';
import { ST_DTYPE_BYTES } from '../io/safetensors.js';

export const DEFAULT_MODEL_ID = 'microsoft/Phi-4-multimodal-instruct';

export type IsqKind = 'q4k' | 'q8_0' | 'none';

export interface LoadProgress {
  stage: 'download' | 'load';
  loaded: number;
  total: number;
  detail?: string;
  done?: boolean;
}

export interface LoadOptions {
  /** Hub branch, tag or commit (default main). */
  revision?: string;
  /** In-situ quantization of the language model at load (default 'none': bf16/f32 as stored). */
  isq?: IsqKind;
  /**
   * The image/audio encoders' linears over bf16 weights: 'f32' (exact products, the fixtures' numerics; default)
   * or 'bf16' (activations rounded to bf16, vdpbf16ps: ~1.7x faster on AVX512-BF16; see tensor/precision.ts).
   */
  encoderPrecision?: ComputePrecision;
  /** Also quantize the image/audio encoders' linears with the same format (default false). */
  quantizeEncoders?: boolean;
  /**
   * Also quantize the vision/speech LoRA adapters' A and B (1.5 GiB of bf16 at the real size) with the same
   * format, Q8_0 where K is not a multiple of 256 (default false).
   */
  quantizeAdapters?: boolean;
  /**
   * Read the image and audio encoders and the vision/speech LoRA adapters on first use (default true), so
   * text-only use never holds them (3.3 of the 5.6 GiB of the real model's q4k folder). Their names and
   * shapes are still checked at load, with everything else; the first image or audio request pays the read
   * (and the ISQ, with quantizeEncoders). false: everything at load.
   */
  lazyMedia?: boolean;
  /** Compute threads (default: all cores). */
  threads?: number;
  /** 'auto' (native addon, else the TS reference with a warning), 'native' or 'reference'. */
  backend?: BackendKind;
  /** Max image crops (default: preprocessor_config.json `dynamic_hd`, else 36). */
  dynamicHd?: number;
  /** Hugging Face cache folder (default $HF_HUB_CACHE / $HF_HOME/hub). */
  cacheDir?: string;
  hubUrl?: string;
  /** Default $HF_TOKEN. */
  token?: string;
  offline?: boolean;
  onProgress?: (p: LoadProgress) => void;
}

export const LOAD_OPTION_KEYS: ReadonlySet<string> = new Set(['revision', 'isq', 'encoderPrecision', 'quantizeEncoders', 'quantizeAdapters', 'lazyMedia', 'threads', 'backend', 'dynamicHd', 'cacheDir', 'hubUrl', 'token', 'offline', 'onProgress']);


export class ValidationError extends Error {
  override name = 'ValidationError';
}

export function validateLoadOptions(o: LoadOptions, keys: ReadonlySet<string> = LOAD_OPTION_KEYS): void {
  if (o === null || typeof o !== 'object') throw new ValidationError('options must be an object');
  const unknown = Object.keys(o).filter((k) => !keys.has(k));
  if (unknown.length) throw new ValidationError(`unknown option(s) ${unknown.join(', ')}; known: ${[...keys].join(', ')}`);
  if (o.isq !== undefined && !['q4k', 'q8_0', 'none'].includes(o.isq)) throw new ValidationError(`isq must be 'q4k', 'q8_0' or 'none' (got ${JSON.stringify(o.isq)})`);
  if (o.encoderPrecision !== undefined && !['f32', 'bf16'].includes(o.encoderPrecision)) throw new ValidationError(`encoderPrecision must be 'f32' or 'bf16' (got ${JSON.stringify(o.encoderPrecision)})`);
  for (const k of ['quantizeEncoders', 'quantizeAdapters', 'lazyMedia'] as const) if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new ValidationError(`${k} must be true or false (got ${JSON.stringify(o[k])})`);
  if (o.threads !== undefined && !(Number.isInteger(o.threads) && o.threads >= 1)) throw new ValidationError(`threads must be a positive integer (got ${JSON.stringify(o.threads)})`);
  if (o.backend !== undefined && !['auto', 'native', 'reference'].includes(o.backend)) throw new ValidationError(`backend must be 'auto', 'native' or 'reference'`);
  if (o.dynamicHd !== undefined && !(Number.isInteger(o.dynamicHd) && o.dynamicHd >= 1)) throw new ValidationError(`dynamicHd must be a positive integer`);
}

/**
 * Where each tensor lives: LM linears follow `isq`, the tied embedding/LM head is Q8_0 under ISQ (decode reads it
 * every token), encoders and LoRA adapters stay bf16/f32 unless asked.
 */
export function storagePolicy(isq: IsqKind, quantizeEncoders = false, quantizeAdapters = false): StoragePolicy {
  return (name, shape) => {
    const k = shape.length === 2 ? shape[1]! : 0;
    const pick = (want: 'q4_k' | 'q8_0'): StorageDType => (want === 'q4_k' && k % 256 === 0 ? 'q4_k' : k % 32 === 0 ? 'q8_0' : 'bf16');
    const isLmLinear = /^model\.layers\.\d+\..*\.base_layer\.weight$/.test(name) || name === 'lm_head.weight';
    if (isq !== 'none' && shape.length === 2) {
      if (isLmLinear) return pick(isq === 'q4k' ? 'q4_k' : 'q8_0');
      if (name === 'model.embed_tokens.weight') return pick('q8_0');
      if (quantizeEncoders && name.startsWith('model.embed_tokens_extend.') && /\.weight$/.test(name) && shape[0]! >= 256) return pick(isq === 'q4k' ? 'q4_k' : 'q8_0');
      // A [r, in] and B [out, r] alike (their rank r is 4 to 320 rows or columns, so no row-count rule here).
      if (quantizeAdapters && /\.lora_[AB]\.\w+\.weight$/.test(name)) return pick(isq === 'q4k' ? 'q4_k' : 'q8_0');
    }
    return 'bf16'; // bf16 checkpoints stay bf16 in memory (decoded on the fly by the kernels); f32 ones stay f32
  };
}

/** Records every tensor the model takes, so a loaded (quantized) model can be written back out. */
class RecordingWeights implements WeightSource {
  constructor(private readonly inner: WeightSource, readonly taken: Map<string, Tensor>) {}
  take(name: string, shape: readonly number[], as?: StorageDType): Tensor {
    const t = this.inner.take(name, shape, as);
    this.taken.set(name, t);
    return t;
  }
  takeOptional(name: string, shape: readonly number[], as?: StorageDType): Tensor | null {
    const t = this.inner.takeOptional(name, shape, as);
    if (t) this.taken.set(name, t);
    return t;
  }
  ignore(pred: (n: string) => boolean): void { this.inner.ignore(pred); }
  has(name: string): boolean { return this.inner.has(name); }
}

/** Bytes of a tensor as stored in the checkpoint. */
function storedBytes(p: TensorProvider, name: string): number {
  const i = p.info(name);
  return i.shape.reduce((a, b) => a * b, 1) * ST_DTYPE_BYTES[i.dtype];
}

/** Reports load progress by bytes read; `defer` takes a tensor whose read is deferred out of the total. */
function progressProvider(p: CheckpointProvider, cb: ((x: LoadProgress) => void) | undefined): { provider: TensorProvider; defer: (name: string) => void } {
  if (!cb) return { provider: p, defer: () => {} };
  const names = p.names();
  let total = names.reduce((a, n) => a + storedBytes(p, n), 0);
  let loaded = 0;
  const tick = (n: string) => { loaded += storedBytes(p, n); cb({ stage: 'load', loaded, total, detail: n }); };
  const provider: TensorProvider = {
    where: p.where, names: () => names, info: (n) => p.info(n),
    readF32: (n) => { const r = p.readF32(n); tick(n); return r; },
    readRaw: (n, into) => { const r = p.readRaw(n, into); tick(n); return r; },
    quantInfo: (n) => p.quantInfo(n),
  };
  return { provider, defer: (n) => void (total -= storedBytes(p, n)) };
}


export interface LoadedModel {
  model: Phi4MMForCausalLM;
  backend: Backend;
  /**
   * bytes/counts: the weights in memory (a deferred part adds to them when it is read; the engine worker's
   * copy of the report is taken at load). deferred: what lazyMedia left for first use, as stored on disk.
   */
  report: LoadReport & { seconds: number; isq: IsqKind; deferred: { tensors: number; bytes: number } };
  /** Every tensor the model took, by checkpoint name (for saveQuantized; deferred parts join when read). */
  tensors: Map<string, Tensor>;
}

/** The load line the CLI and server print (both engine hosts build it here, so they say the same). */
export function describeLoaded(l: LoadedModel): string {
  // The kernel variant matters for speed (the AVX-512 VNNI and AVX2 builds differ by about 3× in prefill).
  const isa = l.backend.isa;
  return `${l.backend.name} backend${isa ? ` (${isa} kernels)` : ''}, ${l.backend.threads} threads, isq ${l.report.isq}; weights: ${describeWeights(l.report)}; loaded in ${l.report.seconds.toFixed(1)} s`;
}

/** "q4_k 2.30 GiB (129 tensors), ...", and what is read on first use: the weights part of the load line. */
function describeWeights(r: LoadedModel['report']): string {
  const parts = Object.entries(r.bytes).map(([d, n]) => `${d} ${(n / 2 ** 30).toFixed(2)} GiB (${r.counts[d]} tensors)`);
  const later = r.deferred?.tensors ? `; encoders and LoRA adapters read on first use: ${(r.deferred.bytes / 2 ** 30).toFixed(2)} GiB on disk (${r.deferred.tensors} tensors)` : '';
  return `${parts.join(', ')}${later}`;
}

/** Resolves a hub id (downloading it) or checks a folder; returns the folder. */
export async function resolveModelDir(idOrPath: string, options: LoadOptions): Promise<string> {
  if (typeof idOrPath !== 'string' || !idOrPath) throw new ValidationError('fromPretrained needs a hub id or a folder path');
  if (!existsSync(idOrPath)) {
    if (idOrPath.startsWith('.') || idOrPath.startsWith('/')) throw new ValidationError(`no such folder: ${idOrPath}`);
    return downloadModel(idOrPath, options);
  }
  if (!statSync(idOrPath).isDirectory()) throw new ValidationError(`${idOrPath} is a file; pass the checkpoint folder that holds config.json`);
  return idOrPath;
}

/** Loads the weights of a local folder with the options' backend and ISQ policy. */
export async function loadModelFolder(dir: string, options: LoadOptions): Promise<LoadedModel> {
  const backend = await createBackend(options.backend ?? 'auto', options.threads ?? availableParallelism());
  return loadWeights(dir, options, backend);
}

/** The synchronous part of loading: the weights onto an existing backend. */
export function loadWeights(dir: string, options: LoadOptions, backend: Backend): LoadedModel {
  const t0 = performance.now();
  const { config, provider } = openCheckpoint(dir);
  const isq = options.isq ?? 'none';
  const taken = new Map<string, Tensor>(), deferred = { tensors: 0, bytes: 0 };
  let model: Phi4MMForCausalLM, report: LoadReport;
  try {
    const progress = progressProvider(provider, options.onProgress);
    const ws = new StrictWeights(progress.provider, storagePolicy(isq, options.quantizeEncoders, options.quantizeAdapters), backendWeightOptions(backend));
    const record = (w: WeightSource) => new RecordingWeights(w, taken);
    // Lazy: the files are closed below and opened again for each deferred part's read, which refuses a folder
    // whose files changed in between. (Keeping them open would leak descriptors: a worker that ends does not
    // close what it opened.) Everything is synchronous, so the engine's worker thread needs nothing more.
    const identity = provider.identity();
    const source = options.lazyMedia === false ? record(ws) : new LazyWeights(ws, {
      reopen: () => provider.reopen(identity),
      wrap: record,
      onDeferred: (n) => { deferred.tensors++; deferred.bytes += storedBytes(provider, n); progress.defer(n); },
    });
    model = new Phi4MMForCausalLM(source, config);
    model.encoderPrecision = options.encoderPrecision ?? 'f32';
    report = ws.finish();
  } finally {
    provider.close();
  }
  options.onProgress?.({ stage: 'load', loaded: 1, total: 1, done: true, detail: `${((performance.now() - t0) / 1000).toFixed(1)} s` });
  return { model, backend, report: { ...report, seconds: (performance.now() - t0) / 1000, isq, deferred }, tensors: taken };
}

/**
 * How a backend takes quantized weights: its ISQ, placement and allocation when it has them (the native backend),
 * else the defaults (TypeScript quantizers, ggml rows). The benches that build a model part by themselves use it
 * too, so they time what a load gives.
 */
export function backendWeightOptions(backend: object): StrictWeightsOptions {
  const nativeQuant = (backend as { quantizeRows?: (d: 'q4_k' | 'q8_0', s: Float32Array, r: number, k: number) => Uint8Array }).quantizeRows;
  if (!nativeQuant) return {};
  return {
    quantize: (d, s, r, k) => nativeQuant.call(backend, d, s, r, k), place: placement(backend), alloc: allocator(backend), quantizeBf16: bf16Quantizer(backend),
    ...plainPlacement(backend), ...plainAllocator(backend),
  };
}

/** peft's LoRA factors: `{prefix}.lora_A.{adapter}.weight` [r, in] and `{prefix}.lora_B.{adapter}.weight` [out, r]. */
const LORA_FACTOR_KEY = /\.lora_[AB]\.[^.]+\.weight$/;

/**
 * The backend's placement of plain weights, when it has one (the native backend): LoRA factors column-major on
 * huge pages, the order its LoRA GEMM reads (native/src/device_gemm_cols.h); the loaded row-major copy is dropped.
 */
function plainPlacement(backend: object): Pick<StrictWeightsOptions, 'placePlain'> {
  const columnMajor = (backend as { columnMajor?: (t: Tensor) => Tensor }).columnMajor;
  return columnMajor ? { placePlain: { wants: (name) => LORA_FACTOR_KEY.test(name), place: (t) => columnMajor.call(backend, t) } } : {};
}

/**
 * The backend's placement of quantized weights, when it has one (the native backend): huge pages, then the
 * row order its kernels read (x16 on AVX-512 VNNI and AVX2; the save path converts back to ggml rows).
 */
function placement(backend: object): ((t: Tensor) => Tensor) | undefined {
  const b = backend as { adviseHugePages?: (d: Uint8Array) => number; preferredLayout?: (t: Tensor) => Tensor };
  if (!b.adviseHugePages || !b.preferredLayout) return undefined;
  return (t) => {
    b.adviseHugePages!.call(backend, t.data as Uint8Array);
    return b.preferredLayout!.call(backend, t);
  };
}

/** The backend's allocation of weight memory, when it has one (the native backend: huge pages from the start). */
function allocator(backend: object): ((bytes: number) => Uint8Array) | undefined {
  const a = (backend as { allocWeights?: (bytes: number) => Uint8Array }).allocWeights;
  return a ? (n) => a.call(backend, n) : undefined;
}

/** The backend's memory for plain weights, when it has some (the native backend: huge-page slabs). */
function plainAllocator(backend: object): Pick<StrictWeightsOptions, 'allocPlain'> {
  const a = (backend as { placementBytes?: (bytes: number) => Uint8Array }).placementBytes;
  return a ? { allocPlain: (n) => a.call(backend, n) } : {};
}

/** The backend's ISQ from raw bf16 bits, when it has one (the native backend). */
function bf16Quantizer(backend: object): ((d: 'q4_k' | 'q8_0', b: Uint16Array, r: number, k: number) => Uint8Array) | undefined {
  const q = (backend as { quantizeRowsBf16?: (d: 'q4_k' | 'q8_0', b: Uint16Array, r: number, k: number) => Uint8Array }).quantizeRowsBf16;
  return q ? (d, b, r, k) => q.call(backend, d, b, r, k) : undefined;
}

/** preprocessor_config.json `dynamic_hd` unless the options set it. */
export function dynamicHdOf(dir: string, options: LoadOptions): number | undefined {
  const pre = readJson(join(dir, 'preprocessor_config.json'));
  return options.dynamicHd ?? (typeof pre?.['dynamic_hd'] === 'number' ? (pre['dynamic_hd'] as number) : undefined);
}

export function readJson(p: string): Record<string, unknown> | null {
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>) : null;
}

export async function downloadModel(id: string, o: LoadOptions): Promise<string> {
  const common = {
    ...(o.revision ? { revision: o.revision } : {}), ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}), ...(o.hubUrl ? { hubUrl: o.hubUrl } : {}),
    ...(o.token ? { token: o.token } : {}), ...(o.offline !== undefined ? { offline: o.offline } : {}),
  };
  // config.json first: the layout decides whether the adapter folders are needed (the original layout
  // carries its LoRA weights inside the main shards, so its vision-lora/ and speech-lora/ copies are skipped).
  const head = await snapshotDownload(id, { ...common, filter: (p) => p === 'config.json' });
  const hf = readJson(join(head, 'config.json'))?.['model_type'] === 'phi4_multimodal';
  const wanted = (p: string) => /\.(json|jinja|safetensors)$/.test(p) && (hf || !/^(vision|speech)-lora\//.test(p));
  return snapshotDownload(id, {
    ...common, filter: wanted,
    ...(o.onProgress ? { onProgress: (p) => o.onProgress!({ stage: 'download', loaded: p.overallLoaded, total: p.overallTotal, detail: p.file, done: p.overallLoaded >= p.overallTotal }) } : {}),
  });
}

