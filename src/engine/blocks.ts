// The KV block pool: fixed-size blocks, per-sequence block tables, reference counts and the prefix cache.
//
// A block is "cached" once it is full and its content key is known: the hash chain over everything that
// determines its keys and values (see blockKeys). Cached blocks are shared by every sequence whose prefix has
// the same chain; when the last reference goes they stay in the cache, unreferenced, until a new allocation
// evicts them least-recently-used. Partial blocks are never shared (a fork copies the partial tail).
import { createHash } from 'node:crypto';
import type { InputMode, MediaGroup } from './types.js';

export class BlockPool {
  private readonly refs: Int32Array;
  private readonly free: number[] = [];
  /** Content key → block, for cached blocks (referenced or not). */
  private readonly byKey = new Map<string, number>();
  private readonly keyOf: (string | null)[];
  /** Cached blocks with no references, least recently used first (Map keeps insertion order). */
  private readonly lru = new Map<number, true>();
  hits = 0;
  evictions = 0;

  constructor(readonly numBlocks: number, readonly blockSize: number) {
    if (!(Number.isInteger(numBlocks) && numBlocks >= 1)) throw new Error(`the KV pool needs at least one block (got ${numBlocks})`);
    this.refs = new Int32Array(numBlocks);
    this.keyOf = new Array(numBlocks).fill(null);
    for (let b = numBlocks - 1; b >= 0; b--) this.free.push(b);
  }

  /** Blocks an allocation can get now: free ones plus unreferenced cached ones (evictable). */
  get available(): number {
    return this.free.length + this.lru.size;
  }
  get freeCount(): number {
    return this.free.length;
  }
  get cachedCount(): number {
    return this.byKey.size;
  }
  refCount(b: number): number {
    return this.refs[b]!;
  }

  /** A fresh block (refcount 1), evicting the least recently used unreferenced cached block if none is free. */
  allocate(): number | null {
    let b = this.free.pop();
    if (b === undefined) {
      const first = this.lru.keys().next();
      if (first.done) return null;
      b = first.value;
      this.lru.delete(b);
      this.byKey.delete(this.keyOf[b]!);
      this.keyOf[b] = null;
      this.evictions++;
    }
    this.refs[b] = 1;
    return b;
  }

  /** `n` fresh blocks, or null (and nothing taken) if the pool cannot give that many. */
  allocateMany(n: number): number[] | null {
    if (n > this.available) return null;
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(this.allocate()!);
    return out;
  }

  /** Another reference to a block (a fork sharing it). */
  retain(b: number): void {
    if (this.refs[b] === 0) this.lru.delete(b);
    this.refs[b]!++;
  }

  release(b: number): void {
    if (this.refs[b]! <= 0) throw new Error(`block ${b} released more often than taken`);
    if (--this.refs[b]! > 0) return;
    if (this.keyOf[b] !== null) this.lru.set(b, true);
    else this.free.push(b);
  }

  releaseAll(table: readonly number[]): void {
    for (const b of table) this.release(b);
  }

  /**
   * The longest run of cached blocks matching `keys` from the start; each is retained (the caller owns one
   * reference per returned block).
   */
  lookup(keys: readonly string[]): number[] {
    const out: number[] = [];
    for (const k of keys) {
      const b = this.byKey.get(k);
      if (b === undefined) break;
      this.retain(b);
      out.push(b);
    }
    this.hits += out.length;
    return out;
  }

  /** How many leading keys are cached (no references taken). */
  peek(keys: readonly string[]): number {
    let n = 0;
    while (n < keys.length && this.byKey.has(keys[n]!)) n++;
    return n;
  }

  /**
   * Marks a full, computed block as holding `key`. If another block already holds that content the cache
   * keeps the older one (this block stays private and returns to the free list when released).
   */
  register(b: number, key: string): void {
    if (this.keyOf[b] !== null || this.byKey.has(key)) return;
    this.keyOf[b] = key;
    this.byKey.set(key, b);
  }
}

/** The media row behind a placeholder row: group (index into the request's media), item, row within it. */
export interface MediaRow {
  key: string;
  group: number;
  item: number;
  row: number;
}

/** Prompt positions of placeholder rows → the media row they carry (only placeholder rows are present). */
export type RowMedia = Map<number, MediaRow>;

/** Placeholder rows of the prompt, matched in order to the media items of each group. */
export function rowMedia(ids: ArrayLike<number>, groups: readonly MediaGroup[], placeholder: { image: number; audio: number }): RowMedia {
  const at: RowMedia = new Map();
  groups.forEach((g, gi) => {
    const id = g.kind === 'image' ? placeholder.image : placeholder.audio;
    let item = 0, row = 0;
    for (let t = 0; t < ids.length && item < g.items.length; t++) {
      if (ids[t] !== id) continue;
      at.set(t, { key: `${g.items[item]!.key}:${row}`, group: gi, item, row });
      if (++row === g.items[item]!.rows) { item++; row = 0; }
    }
    if (item < g.items.length) throw new Error(`the prompt has fewer ${g.kind} placeholder rows than its ${g.kind} items need`);
  });
  return at;
}

/**
 * Content keys of the full blocks of `tokens`: a hash chain, so block i's key covers all of positions
 * [0, (i+1)·blockSize). The chain starts from the input mode (it picks the LoRA adapter, which changes every
 * layer's K and V) and the LongRoPE regime (it changes the rotation of every key), then mixes in each block's
 * token ids and, for placeholder rows, the media row behind them (all images share one placeholder id).
 * `from` = keys already computed for the first blocks (extended, not recomputed).
 */
export function blockKeys(tokens: ArrayLike<number>, upto: number, blockSize: number, mode: InputMode, long: boolean, media: RowMedia | null, from: string[] = []): string[] {
  const keys = from;
  const full = Math.floor(upto / blockSize);
  let prev = keys.length ? keys[keys.length - 1]! : `${mode}|${long ? 'long' : 'short'}`;
  const ids = new Int32Array(blockSize);
  for (let b = keys.length; b < full; b++) {
    const h = createHash('sha1').update(prev);
    for (let i = 0; i < blockSize; i++) ids[i] = tokens[b * blockSize + i]!;
    h.update(new Uint8Array(ids.buffer));
    if (media) {
      for (let i = 0; i < blockSize; i++) {
        const m = media.get(b * blockSize + i);
        if (m !== undefined) h.update(`|${i}=${m.key}`);
      }
    }
    prev = h.digest('base64');
    keys.push(prev);
  }
  return keys;
}
