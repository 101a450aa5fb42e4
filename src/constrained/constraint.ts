// Per-sequence grammar constraint: masks logits to the tokens the grammar allows next, and advances on the
// sampled token. The allowed set depends only on the DFA state, so it is computed once per (grammar, state) by
// one trie walk and cached; later visits only apply the cached mask. All sequences with the same grammar key and
// trie share the DFA and the cache.
import { DEAD, LazyDfa } from './dfa.js';
import type { Grammar } from './grammar.js';
import { GrammarError } from './nfa.js';
import { PlainChains } from './plain.js';
import type { TokenTrie } from './trie.js';

interface MaskEntry {
  /** 'allow': only `ids` pass; 'deny': everything but `ids` passes. EOS ids are never listed (decided separately). */
  mode: 'allow' | 'deny';
  ids: Int32Array;
}

/** Cached mask ids per grammar runtime before the cache is dropped (4 bytes each). */
const MASK_CACHE_IDS = 4_000_000;
/** Grammar runtimes kept per trie (least recently used dropped). */
const RUNTIMES_PER_TRIE = 16;

export class GrammarRuntime {
  readonly dfa: LazyDfa;
  /** Token id of special symbol k. */
  readonly specialIds: Int32Array;
  private readonly masks = new Map<number, MaskEntry>();
  private cachedIds = 0;
  private scratch: Int32Array | undefined;
  private readonly chains: PlainChains | undefined;

  constructor(readonly grammar: Grammar, readonly trie: TokenTrie) {
    this.dfa = new LazyDfa(grammar.nfa);
    this.specialIds = Int32Array.from(grammar.nfa.specials, (content) => {
      const id = trie.addedId(content);
      if (id === undefined) throw new GrammarError(`${grammar.label}: the tokenizer has no added token ${content}`);
      return id;
    });
    if (trie.plain) this.chains = new PlainChains(this.dfa, trie.plain.maxChars);
  }

  mask(state: number): MaskEntry {
    const hit = this.masks.get(state);
    if (hit) return hit;
    const allowed = this.allowedIds(state);
    const n = this.trie.vocabSize;
    let entry: MaskEntry;
    if (allowed.length <= n / 2) entry = { mode: 'allow', ids: allowed };
    else {
      const ok = new Uint8Array(n);
      for (const id of allowed) ok[id] = 1;
      for (const id of this.trie.eosIds) if (id < n) ok[id] = 1; // EOS is decided per step, not listed
      const deny = new Int32Array(n - allowed.length);
      let k = 0;
      for (let id = 0; id < n && k < deny.length; id++) if (!ok[id]) deny[k++] = id;
      entry = { mode: 'deny', ids: deny.subarray(0, k) };
    }
    if (this.cachedIds + entry.ids.length > MASK_CACHE_IDS) { this.masks.clear(); this.cachedIds = 0; }
    this.masks.set(state, entry);
    this.cachedIds += entry.ids.length;
    return entry;
  }

  /** Ids of the non-EOS tokens allowed from `state`; where plain characters step uniformly, via plain.ts. */
  allowedIds(state: number): Int32Array {
    const plain = this.trie.plain;
    const run = plain && this.chains ? this.chains.run(state) : 0;
    if (!plain || run === 0) return this.walk(state);
    const nPlain = plain.upTo[Math.min(run, plain.maxChars)]!;
    const rest = this.walk(state, plain.rest);
    const out = new Int32Array(nPlain + rest.length);
    out.set(plain.ids.subarray(0, nPlain));
    out.set(rest, nPlain);
    return out;
  }

  /** Ids of the non-EOS tokens of `trie` allowed from `state`: one preorder scan, skipping rejected subtrees. */
  walk(state: number, trie = this.trie): Int32Array {
    const { dfa } = this;
    const out = this.scratch ??= new Int32Array(this.trie.vocabSize + this.specialIds.length);
    let count = 0;
    const n = trie.numNodes;
    const byte = trie.nodeByte, depth = trie.nodeDepth, end = trie.nodeEnd, token = trie.nodeToken, hasDup = trie.nodeHasDup;
    const states = new Int32Array(trie.maxDepth + 1);
    states[0] = state;
    dfa.ensure(state);
    let trans = dfa.trans;
    let i = 0;
    while (i < n) {
      const d = depth[i]!;
      const from = states[d]!;
      let t = trans[(from << 8) | byte[i]!]!;
      if (t === -2) {
        t = dfa.next(from, byte[i]!);
        trans = dfa.trans;
      }
      if (t === DEAD) { i = end[i]!; continue; }
      states[d + 1] = t;
      const tok = token[i]!;
      if (tok >= 0) {
        out[count++] = tok;
        if (hasDup[i] === 1) for (const dup of trie.dupTokens.get(i)!) out[count++] = dup;
      }
      i++;
    }
    for (let k = 0; k < this.specialIds.length; k++) if (dfa.nextSpecial(state, k) !== DEAD) out[count++] = this.specialIds[k]!;
    return out.slice(0, count);
  }
}

const runtimes = new WeakMap<TokenTrie, Map<string, GrammarRuntime>>();

/** The shared runtime for (grammar, trie): built on first use, then reused by every sequence. */
export function grammarRuntime(grammar: Grammar, trie: TokenTrie): GrammarRuntime {
  let byKey = runtimes.get(trie);
  if (!byKey) runtimes.set(trie, (byKey = new Map()));
  let rt = byKey.get(grammar.key);
  if (rt) {
    byKey.delete(grammar.key); // refresh LRU position
  } else {
    rt = new GrammarRuntime(grammar, trie);
    if (byKey.size >= RUNTIMES_PER_TRIE) byKey.delete(byKey.keys().next().value!);
  }
  byKey.set(grammar.key, rt);
  return rt;
}

export class GrammarConstraint {
  private readonly rt: GrammarRuntime;
  private state: number;
  private ended = false;

  constructor(grammar: Grammar, readonly trie: TokenTrie) {
    this.rt = grammarRuntime(grammar, trie);
    this.state = this.rt.dfa.start;
  }

  /** The grammar accepts the output so far (EOS is allowed now). */
  canEnd(): boolean {
    return this.rt.dfa.accepting(this.state);
  }

  /** The grammar accepts and nothing may follow: only EOS is allowed. */
  isComplete(): boolean {
    return this.canEnd() && !this.rt.dfa.hasNext(this.state);
  }

  /** An EOS token was accepted. */
  get finished(): boolean {
    return this.ended;
  }

  /** Sets every id the grammar does not allow next to -Infinity (in place). */
  mask(logits: Float32Array): void {
    const eos = this.trie.eosIds;
    const canEnd = this.canEnd() && !this.ended;
    const eosVals = Float32Array.from(eos, (id) => logits[id] ?? -Infinity);
    const n = Math.min(logits.length, this.trie.vocabSize);
    if (this.ended) logits.fill(-Infinity);
    else {
      const entry = this.rt.mask(this.state);
      const ids = entry.ids;
      if (entry.mode === 'deny') {
        for (let k = 0; k < ids.length; k++) logits[ids[k]!] = -Infinity;
      } else {
        const keep = new Float32Array(ids.length);
        for (let k = 0; k < ids.length; k++) keep[k] = logits[ids[k]!]!;
        logits.fill(-Infinity, 0, n);
        for (let k = 0; k < ids.length; k++) logits[ids[k]!] = keep[k]!;
      }
    }
    if (logits.length > n) logits.fill(-Infinity, n);
    for (let k = 0; k < eos.length; k++) if (eos[k]! < logits.length) logits[eos[k]!] = canEnd ? eosVals[k]! : -Infinity;
  }

  /**
   * The allowed set without touching logits: `allow` mode lists the allowed ids, `deny` mode the disallowed ones
   * (ids >= trie.vocabSize are always disallowed); EOS ids are never listed, `eos` says whether they are allowed.
   * Lets a sampler work on the allowed ids only when they are few. Do not modify `ids` (it is the shared cache).
   */
  allowed(): { mode: 'allow' | 'deny'; ids: Int32Array; eos: boolean } {
    if (this.ended) return { mode: 'allow', ids: new Int32Array(0), eos: false };
    const e = this.rt.mask(this.state);
    return { mode: e.mode, ids: e.ids, eos: this.canEnd() };
  }

  /** Whether `id` may come next. */
  allows(id: number): boolean {
    return this.step(id) !== DEAD;
  }

  /** Advances past `id`; throws if the grammar does not allow it (the sampler must sample from masked logits). */
  accept(id: number): void {
    const next = this.step(id);
    if (next === DEAD) throw new GrammarError(`${this.rt.grammar.label}: token ${id} is not allowed here`);
    if (this.trie.eosIds.includes(id)) this.ended = true;
    else this.state = next;
  }

  private step(id: number): number {
    if (this.ended) return DEAD;
    if (this.trie.eosIds.includes(id)) return this.canEnd() ? this.state : DEAD;
    const { dfa, specialIds } = this.rt;
    const k = specialIds.indexOf(id);
    if (k >= 0) return dfa.nextSpecial(this.state, k);
    const bytes = this.trie.tokenBytes(id);
    if (!bytes) return DEAD;
    let s = this.state;
    for (let i = 0; i < bytes.length && s !== DEAD; i++) s = dfa.next(s, bytes[i]!);
    return s;
  }
}
