// The scheduler: continuous batching over a paged KV pool. Host-agnostic (no threads, no I/O): a host calls
// submit/abort when requests arrive or go away and step() while there is work; events go out through `emit`.
//
// One step = one ragged forward: every decoding sequence's next row plus up to `prefillChunk` prompt rows of
// prefilling sequences (chunked prefill: one long prompt never stalls the other streams for longer than a
// chunk). Each sequence samples with its own sampler (own parameters, own seeded RNG).
import { createSampler, type SequenceSampler } from '../text/sampler.js';
import { AUDIO_TOKEN_ID, IMAGE_TOKEN_ID } from '../text/special_tokens.js';
import { BlockPool, blockKeys, rowMedia, type RowMedia } from './blocks.js';
import { MediaCache } from './media_cache.js';
import { EngineError, type BatchModel, type BatchSeq, type EngineEvent, type EngineRequest, type EngineSettings, type EngineStats, type FinishReason } from './types.js';

interface Req {
  r: EngineRequest;
  media: RowMedia;
  seqs: Seq[];
  /** Children still to fork from the first sequence once its prompt is in (n > 1). */
  toFork: number;
  tSubmit: number;
  encoderSec: number;
  /** Media cache keys pinned by this request. */
  pinned: Set<string>;
  features: Map<number, Float32Array[]>; // group index → per-item features
}

interface Seq {
  req: Req;
  index: number;
  /** Prompt + generated ids; the last one is the row the next decode step feeds. */
  tokens: number[];
  promptLen: number;
  /** Positions whose K/V are in the blocks. */
  computed: number;
  /** Prefill runs until `computed` reaches this (then the last row's logits are sampled). */
  target: number;
  table: number[];
  /** Content keys of the full computed blocks (in this sequence's regime). */
  keys: string[];
  long: boolean;
  phase: 'queued' | 'prefill' | 'decode' | 'done';
  sampler: SequenceSampler;
  generated: number;
  cachedTokens: number;
  tFirst: number;
}

const now = () => performance.now();

export class Scheduler {
  readonly pool: BlockPool;
  readonly media: MediaCache;
  private readonly waiting: Req[] = [];
  /** Sequences preempted (blocks taken back) or restarted: admitted before new requests. */
  private readonly resume: Seq[] = [];
  private readonly running: Seq[] = [];
  private readonly reqs = new Map<number, Req>();
  private steps = 0;

  constructor(readonly model: BatchModel, readonly settings: EngineSettings, private readonly emit: (ev: EngineEvent) => void) {
    this.pool = new BlockPool(settings.numBlocks, settings.blockSize);
    this.media = new MediaCache(settings.mediaCacheBytes);
    model.allocKv(settings.numBlocks, settings.blockSize);
  }

  get hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0 || this.resume.length > 0;
  }

  stats(): EngineStats {
    return {
      running: this.running.length, waiting: this.waiting.length + this.resume.length,
      blocksTotal: this.pool.numBlocks, blocksFree: this.pool.freeCount, blocksCached: this.pool.cachedCount, blocksInUse: this.pool.numBlocks - this.pool.available,
      blockSize: this.pool.blockSize, kvBytesPerToken: this.model.kvBytesPerToken,
      mediaCacheBytes: this.media.bytes, mediaCacheEntries: this.media.size, steps: this.steps,
    };
  }

  /** Queues a request; throws EngineError 400 (can never run) or 429 (too many waiting). */
  submit(r: EngineRequest): void {
    const bs = this.pool.blockSize, P = r.ids.length, m = this.model;
    if (this.reqs.has(r.id)) throw new EngineError(`request id ${r.id} is already in use`, 400, 'duplicate_id');
    if (P === 0) throw new EngineError('the prompt is empty', 400, 'empty_prompt');
    if (P >= m.maxPositions) throw new EngineError(`the prompt is ${P} tokens; the model's context is ${m.maxPositions}`, 400, 'context_length_exceeded');
    if (!(Number.isInteger(r.n) && r.n >= 1)) throw new EngineError(`n must be a positive integer (got ${r.n})`, 400, 'invalid_value');
    if (r.n > this.settings.maxRunning) throw new EngineError(`n = ${r.n} exceeds the engine's ${this.settings.maxRunning} concurrent sequences`, 400, 'invalid_value');
    const gen = Math.min(r.maxTokens, m.maxPositions - P);
    const need = r.n === 1 ? Math.ceil((P + gen) / bs) : Math.ceil(P / bs) + r.n * (Math.ceil(gen / bs) + 1);
    if (need > this.pool.numBlocks) {
      throw new EngineError(
        `this request needs ${need} KV blocks (${P} prompt tokens + up to ${gen} new, n = ${r.n}) but the pool holds ${this.pool.numBlocks} ` +
          `blocks of ${bs} tokens; lower max_tokens or give the engine more KV memory (--kv-cache-gb)`, 400, 'kv_cache_too_small');
    }
    const req: Req = {
      r, media: rowMedia(r.ids, r.media, { image: IMAGE_TOKEN_ID, audio: AUDIO_TOKEN_ID }), seqs: [], toFork: r.n - 1,
      tSubmit: now(), encoderSec: 0, pinned: new Set(), features: new Map(),
    };
    this.waiting.push(req);
    this.reqs.set(r.id, req);
    this.admit();
    if (this.waiting.length > this.settings.maxWaiting && this.waiting[this.waiting.length - 1] === req) {
      this.waiting.pop();
      this.reqs.delete(r.id);
      throw new EngineError(`the engine is busy (${this.running.length} sequences running, ${this.waiting.length} requests waiting); retry later`, 429, 'queue_full');
    }
  }

  /** Frees the request's sequences now (between steps); each gets a 'cancelled' done event. */
  abort(id: number): void {
    const req = this.reqs.get(id);
    if (!req) return;
    const wi = this.waiting.indexOf(req);
    if (wi >= 0) this.waiting.splice(wi, 1);
    if (req.seqs.length === 0) {
      for (let i = 0; i < req.r.n; i++) this.emit({ type: 'done', id, index: i, done: this.summary(req, null, 'cancelled') });
      this.forget(req);
      return;
    }
    for (const s of [...req.seqs]) if (s.phase !== 'done') this.finish(s, 'cancelled');
  }

  /** One forward over the next ragged batch; false when there was nothing to run. */
  step(): boolean {
    this.admit();
    const batch: Array<{ seq: Seq; rows: number; logits: boolean }> = [];
    // Decode rows first: each running decoder feeds its last sampled token.
    for (const s of [...this.running]) {
      if (s.phase !== 'decode') continue;
      if (!s.long && this.model.useLong(s.tokens.length)) {
        this.restart(s, true); // LongRoPE switch: the cached keys were rotated with the short factors
        continue;
      }
      if (!this.ensureBlocks(s, s.computed + 1)) continue; // s itself was preempted
      batch.push({ seq: s, rows: 1, logits: true });
    }
    this.admit(); // restarted sequences may get their blocks back now
    let budget = this.settings.prefillChunk;
    for (const s of this.running) {
      if (s.phase !== 'prefill' || budget <= 0) continue;
      const rows = Math.min(budget, s.target - s.computed);
      budget -= rows;
      batch.push({ seq: s, rows, logits: s.computed + rows === s.target });
    }
    const live = batch.filter((b) => b.seq.phase !== 'done' && b.seq.phase !== 'queued');
    if (live.length === 0) return false;
    const seqs: BatchSeq[] = live.map(({ seq, rows, logits }) => this.batchSeq(seq, rows, logits));
    const logits = this.model.forwardBatch(seqs);
    this.steps++;
    const V = this.model.vocabSize;
    let li = 0;
    for (const { seq, rows, logits: wants } of live) {
      seq.computed += rows;
      this.registerFull(seq);
      if (!wants) continue;
      const row = logits.subarray(li * V, (li + 1) * V);
      li++;
      if (seq.phase === 'done') continue;
      for (const s of this.forkAfterPrompt(seq)) this.sampleInto(s, row);
    }
    return true;
  }

  /** After a failed step: every running and queued request gets the error and its blocks back. */
  failAll(error: import('./types.js').EngineErrorInfo): void {
    for (const req of [...this.reqs.values()]) {
      if (req.seqs.length === 0) continue; // still waiting: untouched by the failed forward
      for (const s of req.seqs) {
        this.pool.releaseAll(s.table);
        s.table = [];
        s.phase = 'done';
      }
      this.running.splice(0, this.running.length, ...this.running.filter((s) => s.req !== req));
      this.resume.splice(0, this.resume.length, ...this.resume.filter((s) => s.req !== req));
      req.toFork = 0;
      this.emit({ type: 'error', id: req.r.id, error });
      this.forget(req);
    }
  }

  private batchSeq(s: Seq, rows: number, logits: boolean): BatchSeq {
    const ids = Int32Array.from(s.tokens.slice(s.computed, s.computed + rows));
    const b: BatchSeq = { ids, mode: s.req.r.mode, long: s.long, start: s.computed, blockTable: Int32Array.from(s.table), logits };
    const first = s.computed, last = s.computed + rows;
    let hasMedia = false;
    for (const t of s.req.media.keys()) if (t >= first && t < last) { hasMedia = true; break; }
    if (hasMedia) b.embeds = this.embedRows(s.req, ids, first);
    return b;
  }

  /** [rows, hidden] token embeddings of rows first.. with the media rows merged in (encoding on a media-cache miss). */
  private embedRows(req: Req, ids: Int32Array, first: number): Float32Array {
    const H = this.model.hidden, out = this.model.embed(ids);
    for (let i = 0; i < ids.length; i++) {
      const m = req.media.get(first + i);
      if (!m) continue;
      const f = this.features(req, m.group)[m.item]!;
      out.set(f.subarray(m.row * H, (m.row + 1) * H), i * H);
    }
    return out;
  }

  private features(req: Req, gi: number): Float32Array[] {
    let f = req.features.get(gi);
    if (f) return f;
    const g = req.r.media[gi]!;
    const t0 = now();
    const got = this.media.acquire(g.key, () => {
      if (g.kind === 'image') {
        if (!g.image) throw new EngineError('image features are not cached and the request carries no pixels', 500);
        return this.model.encodeImages(g.image);
      }
      if (!g.audio) throw new EngineError('audio features are not cached and the request carries no features', 500);
      return this.model.encodeAudio(g.audio, g.projection ?? 'speech');
    });
    if (!got.hit) req.encoderSec += (now() - t0) / 1000;
    req.pinned.add(g.key);
    f = got.features;
    g.items.forEach((it, i) => {
      if (f![i]!.length !== it.rows * this.model.hidden) throw new EngineError(`${g.kind} ${i}: the encoder gave ${f![i]!.length / this.model.hidden} rows for ${it.rows} placeholder tokens`, 400, 'media_mismatch');
    });
    req.features.set(gi, f);
    return f;
  }

  /** Registers the sequence's newly full blocks in the prefix cache. */
  private registerFull(s: Seq): void {
    if (this.settings.prefixCache === false) return;
    const before = s.keys.length;
    blockKeys(s.tokens, s.computed, this.pool.blockSize, s.req.r.mode, s.long, s.req.media.size ? s.req.media : null, s.keys);
    for (let b = before; b < s.keys.length; b++) this.pool.register(s.table[b]!, s.keys[b]!);
  }

  /** The sequences that sample from this logits row: on the first prompt completion of an n > 1 request, the forks too. */
  private forkAfterPrompt(parent: Seq): Seq[] {
    const req = parent.req;
    if (req.toFork === 0 || parent.phase !== 'prefill' || parent.generated > 0) return [parent];
    const out = [parent];
    const bs = this.pool.blockSize, full = Math.floor(parent.computed / bs), partial = parent.computed % bs !== 0;
    for (; req.toFork > 0; req.toFork--) {
      const index = req.r.n - req.toFork;
      const table = parent.table.slice(0, full);
      if (partial) {
        // A partly filled block is never shared: the fork gets its own copy (copy-on-write at fork time).
        const nb = this.pool.allocate();
        if (nb === null) break; // no room now: the remaining forks start later from the cached prompt
        this.model.copyBlocks(Int32Array.of(parent.table[full]!), Int32Array.of(nb));
        table.push(nb);
      }
      for (let b = 0; b < full; b++) this.pool.retain(table[b]!);
      const child = this.newSeq(req, index, [...parent.tokens], parent.long);
      Object.assign(child, { computed: parent.computed, target: parent.target, table, keys: [...parent.keys], phase: 'prefill', cachedTokens: parent.cachedTokens });
      this.running.push(child);
      out.push(child);
    }
    if (req.toFork > 0) {
      // Forks that found no block: queue them to prefill from the (now cached) prompt.
      for (; req.toFork > 0; req.toFork--) this.resume.push(this.newSeq(req, req.r.n - req.toFork, [...parent.tokens.slice(0, parent.promptLen)], this.model.useLong(parent.promptLen)));
    }
    return out;
  }

  private sampleInto(s: Seq, logits: Float32Array): void {
    const st = s.sampler.step(logits);
    const id = st.id;
    if (s.generated === 0) s.tFirst = now();
    s.generated++;
    s.phase = 'decode';
    this.emit({
      type: 'token', id: s.req.r.id, index: s.index, token: id, ...(s.generated === 1 ? { cachedTokens: s.cachedTokens } : {}),
      ...(st.logprob !== undefined ? { logprob: st.logprob } : {}), ...(st.top ? { top: st.top } : {}),
    });
    if (s.req.r.stopIds.includes(id)) return this.finish(s, 'stop');
    if (s.generated >= s.req.r.maxTokens || s.tokens.length + 1 >= this.model.maxPositions) return this.finish(s, 'length');
    s.tokens.push(id);
  }

  private newSeq(req: Req, index: number, tokens: number[], long: boolean): Seq {
    const spec = req.r.sampler;
    const sampler = createSampler(spec.seed !== undefined ? { ...spec, seed: spec.seed + index } : spec, { vocabSize: this.model.vocabSize, promptIds: req.r.ids, ...(this.model.constraints ? { constraints: (c) => this.model.constraints!(c) } : {}) });
    const s: Seq = {
      req, index, tokens, promptLen: req.r.ids.length, computed: 0, target: tokens.length, table: [], keys: [], long,
      phase: 'queued', sampler, generated: 0, cachedTokens: 0, tFirst: 0,
    };
    req.seqs.push(s);
    return s;
  }

  /** Admits preempted/restarted sequences, then waiting requests, while slots and blocks allow (FIFO). */
  private admit(): void {
    while (this.resume.length) {
      if (this.running.length >= this.settings.maxRunning || !this.place(this.resume[0]!)) return;
      this.running.push(this.resume.shift()!);
    }
    while (this.waiting.length) {
      const req = this.waiting[0]!;
      if (this.running.length + req.r.n > this.settings.maxRunning) return;
      const s = this.newSeq(req, 0, Array.from(req.r.ids), this.model.useLong(req.r.ids.length));
      if (!this.place(s)) {
        req.seqs.pop();
        return;
      }
      this.waiting.shift();
      s.cachedTokens = s.computed;
      this.running.push(s);
    }
  }

  /** Gives a queued sequence its blocks: cached prefix blocks shared, fresh ones for the rest. */
  private place(s: Seq): boolean {
    const bs = this.pool.blockSize;
    const keys = blockKeys(s.tokens, s.target, bs, s.req.r.mode, s.long, s.req.media.size ? s.req.media : null);
    // At least the last row is computed (it gives the logits), so at most floor((target-1)/bs) blocks reuse.
    const usable = this.settings.prefixCache === false ? 0 : Math.min(this.pool.peek(keys), Math.floor((s.target - 1) / bs));
    const fresh = Math.ceil(s.target / bs) - usable;
    if (fresh > this.pool.available - usable) return false; // conservatively assume the matched blocks were evictable
    const table = this.pool.lookup(keys.slice(0, usable));
    const more = this.pool.allocateMany(fresh);
    if (!more) {
      this.pool.releaseAll(table);
      return false;
    }
    s.table = table.concat(more);
    s.keys = keys.slice(0, usable);
    s.computed = usable * bs;
    s.phase = 'prefill';
    return true;
  }

  /** Makes the table cover positions [0, upto), preempting the most recently admitted others if the pool is dry. */
  private ensureBlocks(s: Seq, upto: number): boolean {
    const bs = this.pool.blockSize;
    while (s.table.length * bs < upto) {
      const b = this.pool.allocate();
      if (b !== null) { s.table.push(b); continue; }
      const victim = [...this.running].reverse().find((v) => v !== s && v.phase !== 'done');
      this.restart(victim ?? s, false);
      if (!victim) return false;
    }
    return true;
  }

  /** Drops a sequence's blocks and queues it to prefill all its tokens again (LongRoPE switch or preemption). */
  private restart(s: Seq, long: boolean): void {
    this.pool.releaseAll(s.table);
    s.table = [];
    s.keys = [];
    s.computed = 0;
    s.target = s.tokens.length;
    if (long) s.long = true;
    s.phase = 'queued';
    this.running.splice(this.running.indexOf(s), 1);
    this.resume.push(s);
  }

  private finish(s: Seq, reason: FinishReason): void {
    const req = s.req;
    this.pool.releaseAll(s.table);
    s.table = [];
    const ri = this.running.indexOf(s);
    if (ri >= 0) this.running.splice(ri, 1);
    const qi = this.resume.indexOf(s);
    if (qi >= 0) this.resume.splice(qi, 1);
    s.phase = 'done';
    this.emit({ type: 'done', id: req.r.id, index: s.index, done: this.summary(req, s, reason) });
    if (reason === 'cancelled' && req.toFork > 0) {
      // Forks never started: they end too.
      for (; req.toFork > 0; req.toFork--) this.emit({ type: 'done', id: req.r.id, index: req.r.n - req.toFork, done: this.summary(req, null, 'cancelled') });
    }
    if (req.toFork === 0 && req.seqs.every((x) => x.phase === 'done')) this.forget(req);
  }

  private summary(req: Req, s: Seq | null, reason: FinishReason): import('./types.js').SeqDone {
    const t = now(), tFirst = s && s.generated > 0 ? s.tFirst : t;
    return {
      reason, promptTokens: req.r.ids.length, cachedTokens: s?.cachedTokens ?? 0, completionTokens: s?.generated ?? 0,
      promptSec: (tFirst - req.tSubmit) / 1000, complSec: (t - tFirst) / 1000, encoderSec: req.encoderSec,
    };
  }

  private forget(req: Req): void {
    for (const k of req.pinned) this.media.unpin(k);
    req.pinned.clear();
    req.features.clear();
    this.reqs.delete(req.r.id);
  }
}
