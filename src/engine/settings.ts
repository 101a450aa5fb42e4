// Engine options (library/CLI/server) → scheduler settings, with the KV pool sized from a memory budget.
import { freemem } from 'node:os';
import type { EngineSettings } from './types.js';
import type { KvDType } from '../tensor/device.js';

export interface EngineOptions {
  /** 'worker' (default): the scheduler and the model live in a worker_thread; 'inline': on the calling thread. */
  host?: 'worker' | 'inline';
  /** KV pool budget in GiB (default: 40% of the RAM free once the model is loaded, printed at start-up). */
  kvCacheGb?: number;
  /** KV storage (default 'f16': 128 KiB/token on Phi-4-mini; 'f32' exact oracle; 'q8_0' smallest). */
  kvDtype?: KvDType;
  /** Tokens per KV block (16 or 32; default 16). */
  blockSize?: number;
  /** Sequences generating at once (default 8). */
  maxRunning?: number;
  /** Requests waiting for a slot before new ones get 429 (default 16). */
  maxWaiting?: number;
  /** Prompt tokens prefilled per step (default 256): a long prompt delays other streams' tokens by at most one chunk. */
  prefillChunk?: number;
  /** Media cache budget in MiB (projected image/audio features; default 512; 0 = off). */
  mediaCacheMb?: number;
  /** Reuse the KV of earlier requests with the same prefix (default true). */
  prefixCache?: boolean;
}

export const ENGINE_OPTION_KEYS: ReadonlySet<string> = new Set(['host', 'kvDtype', 'kvCacheGb', 'blockSize', 'maxRunning', 'maxWaiting', 'prefillChunk', 'mediaCacheMb', 'prefixCache']);

/** Share of the free RAM the default KV budget takes. */
const DEFAULT_KV_SHARE_OF_FREE = 0.4;

export function validateEngineOptions(o: EngineOptions): string | null {
  if (o === null || typeof o !== 'object') return 'engine options must be an object';
  const unknown = Object.keys(o).filter((k) => !ENGINE_OPTION_KEYS.has(k));
  if (unknown.length) return `unknown engine option(s) ${unknown.join(', ')}; known: ${[...ENGINE_OPTION_KEYS].join(', ')}`;
  if (o.host !== undefined && o.host !== 'worker' && o.host !== 'inline') return `engine.host must be 'worker' or 'inline'`;
  if (o.kvCacheGb !== undefined && !(typeof o.kvCacheGb === 'number' && o.kvCacheGb > 0 && Number.isFinite(o.kvCacheGb))) return `kvCacheGb must be a positive number of GiB (got ${o.kvCacheGb})`;
  if (o.kvDtype !== undefined && !['f16', 'f32', 'q8_0'].includes(o.kvDtype)) return `kvDtype must be 'f16', 'f32' or 'q8_0' (got ${JSON.stringify(o.kvDtype)})`;
  if (o.blockSize !== undefined && o.blockSize !== 16 && o.blockSize !== 32) return `blockSize must be 16 or 32 (got ${o.blockSize})`;
  for (const k of ['maxRunning', 'prefillChunk'] as const) if (o[k] !== undefined && !(Number.isInteger(o[k]) && o[k]! >= 1)) return `${k} must be a positive integer (got ${o[k]})`;
  if (o.maxWaiting !== undefined && !(Number.isInteger(o.maxWaiting) && o.maxWaiting >= 0)) return `maxWaiting must be a non-negative integer (got ${o.maxWaiting})`;
  if (o.prefixCache !== undefined && typeof o.prefixCache !== 'boolean') return `prefixCache must be true or false`;
  if (o.mediaCacheMb !== undefined && !(typeof o.mediaCacheMb === 'number' && o.mediaCacheMb >= 0)) return `mediaCacheMb must be a non-negative number (got ${o.mediaCacheMb})`;
  return null;
}

/**
 * Settings for a model whose KV takes `kvBytesPerToken`, and a line saying how the pool was sized. `pendingBytes`:
 * weights not read yet (lazily loaded encoders and adapters) that the default budget leaves room for.
 */
export function resolveSettings(o: EngineOptions, kvBytesPerToken: number, maxPositions: number, pendingBytes = 0): { settings: EngineSettings; note: string } {
  const blockSize = o.blockSize ?? 16, maxRunning = o.maxRunning ?? 8;
  const blockBytes = kvBytesPerToken * blockSize;
  let bytes: number, how: string;
  if (o.kvCacheGb !== undefined) {
    bytes = o.kvCacheGb * 2 ** 30;
    how = 'kvCacheGb';
  } else {
    // Never more than every running sequence at full context could use.
    const free = Math.max(0, freemem() - pendingBytes);
    bytes = Math.min(free * DEFAULT_KV_SHARE_OF_FREE, maxRunning * maxPositions * kvBytesPerToken);
    const pending = pendingBytes > 0 ? ` (less ${(pendingBytes / 2 ** 30).toFixed(1)} GiB of weights read on first use)` : '';
    how = `default: ${Math.round(DEFAULT_KV_SHARE_OF_FREE * 100)}% of ${(free / 2 ** 30).toFixed(1)} GiB free RAM${pending}`;
  }
  const numBlocks = Math.max(1, Math.floor(bytes / blockBytes));
  const settings: EngineSettings = {
    blockSize, numBlocks, maxRunning, maxWaiting: o.maxWaiting ?? 16, prefillChunk: o.prefillChunk ?? 256,
    mediaCacheBytes: (o.mediaCacheMb ?? 512) * 2 ** 20, prefixCache: o.prefixCache ?? true,
  };
  const note = `KV cache: ${((numBlocks * blockBytes) / 2 ** 30).toFixed(2)} GiB (${how}) = ${numBlocks} blocks of ${blockSize} tokens ` +
    `= ${numBlocks * blockSize} tokens at ${kvBytesPerToken >= 1024 ? `${(kvBytesPerToken / 1024).toFixed(0)} KiB` : `${kvBytesPerToken} B`}/token; up to ${maxRunning} sequences at once`;
  return { settings, note };
}
