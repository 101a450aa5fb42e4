// Lazy subset construction over an NfaSpec. A DFA state is the epsilon-closed set of NFA states; its 256 byte
// transitions (and the special-token ones) are computed together the first time the state is stepped, then read
// from a flat Int32Array: that lookup is the inner loop of the trie walk.
import { GrammarError, type NfaSpec, SPECIAL_BASE } from './nfa.js';

export const DEAD = -1;
const UNKNOWN = -2;
/** Cap on DFA states per grammar; past it the grammar is refused rather than exhausting memory. */
const MAX_DFA_STATES = 50_000; // ~1 KiB of transitions each

export class LazyDfa {
  /** [state * 256 + byte] → next state, DEAD, or UNKNOWN (not expanded yet). */
  trans: Int32Array = new Int32Array(256 * 64).fill(UNKNOWN);
  /** [state * numSpecials + k] → next state on special token k. */
  private specialTrans: Int32Array;
  readonly numSpecials: number;
  private readonly sets: Int32Array[] = [];
  private readonly ids = new Map<string, number>();
  private acceptFlags = new Uint8Array(64);
  /** Whether the state has any outgoing transition (computed on expansion). */
  private liveFlags = new Uint8Array(64);
  // NFA in CSR form.
  private readonly edgeStart: Int32Array;
  private readonly edgeData: Int32Array; // [lo, hi, to] triples grouped by source
  private readonly epsStart: Int32Array;
  private readonly epsTo: Int32Array;
  private readonly stamp: Int32Array;
  private stampGen = 0;
  readonly start: number;

  constructor(readonly nfa: NfaSpec) {
    const n = nfa.numStates;
    this.numSpecials = nfa.specials.length;
    this.specialTrans = new Int32Array(Math.max(1, this.numSpecials) * 64).fill(UNKNOWN);
    [this.edgeStart, this.edgeData] = csr(n, nfa.edges, 4, (e, i) => [e[i + 1]!, e[i + 2]!, e[i + 3]!]);
    [this.epsStart, this.epsTo] = csr(n, nfa.eps, 2, (e, i) => [e[i + 1]!]);
    this.stamp = new Int32Array(n);
    this.start = this.intern(this.closure([nfa.start]));
  }

  get size(): number {
    return this.sets.length;
  }

  accepting(s: number): boolean {
    return this.acceptFlags[s] === 1;
  }

  /** Whether any byte or special token can follow (false: the grammar is complete here). */
  hasNext(s: number): boolean {
    this.ensure(s);
    return this.liveFlags[s] === 1;
  }

  next(s: number, byte: number): number {
    const t = this.trans[s * 256 + byte]!;
    if (t !== UNKNOWN) return t;
    this.expand(s);
    return this.trans[s * 256 + byte]!;
  }

  nextSpecial(s: number, k: number): number {
    this.ensure(s);
    return this.specialTrans[s * this.numSpecials + k]!;
  }

  ensure(s: number): void {
    if (this.trans[s * 256] === UNKNOWN) this.expand(s);
  }

  private closure(seed: Iterable<number>): Int32Array {
    const gen = ++this.stampGen;
    const stack: number[] = [];
    const out: number[] = [];
    for (const s of seed) if (this.stamp[s] !== gen) { this.stamp[s] = gen; stack.push(s); }
    while (stack.length) {
      const s = stack.pop()!;
      out.push(s);
      for (let i = this.epsStart[s]!; i < this.epsStart[s + 1]!; i++) {
        const t = this.epsTo[i]!;
        if (this.stamp[t] !== gen) { this.stamp[t] = gen; stack.push(t); }
      }
    }
    // Only states with outgoing symbol edges or the accept state matter for identity.
    const core = out.filter((s) => this.edgeStart[s + 1]! > this.edgeStart[s]! || s === this.nfa.accept);
    return Int32Array.from(core).sort();
  }

  private intern(set: Int32Array): number {
    if (set.length === 0) return DEAD;
    const key = set.join(',');
    const hit = this.ids.get(key);
    if (hit !== undefined) return hit;
    const id = this.sets.length;
    if (id >= MAX_DFA_STATES) throw new GrammarError(`the grammar's automaton grew past ${MAX_DFA_STATES} states; simplify the schema`);
    this.sets.push(set);
    this.ids.set(key, id);
    if ((id + 1) * 256 > this.trans.length) {
      const grown = new Int32Array(this.trans.length * 2).fill(UNKNOWN);
      grown.set(this.trans);
      this.trans = grown;
      const sp = new Int32Array(this.specialTrans.length * 2).fill(UNKNOWN);
      sp.set(this.specialTrans);
      this.specialTrans = sp;
      const acc = new Uint8Array(this.acceptFlags.length * 2);
      acc.set(this.acceptFlags);
      this.acceptFlags = acc;
      const live = new Uint8Array(this.liveFlags.length * 2);
      live.set(this.liveFlags);
      this.liveFlags = live;
    }
    this.acceptFlags[id] = set.includes(this.nfa.accept) ? 1 : 0;
    return id;
  }

  private expand(s: number): void {
    const set = this.sets[s]!;
    const nsym = 256 + this.numSpecials;
    // Symbols where some edge range starts or ends split [0, nsym) into intervals with one target set each.
    const cuts = new Uint8Array(nsym + 1);
    cuts[0] = 1;
    const los: number[] = [], his: number[] = [], tos: number[] = [];
    for (const q of set) {
      for (let i = this.edgeStart[q]!; i < this.edgeStart[q + 1]!; i++) {
        const lo = this.edgeData[3 * i]!, hi = this.edgeData[3 * i + 1]!;
        los.push(lo); his.push(hi); tos.push(this.edgeData[3 * i + 2]!);
        cuts[lo] = 1;
        cuts[hi + 1] = 1;
      }
    }
    const memo = new Map<string, number>();
    const targets = new Int32Array(nsym).fill(DEAD);
    let live = 0;
    for (let a = 0; a < nsym;) {
      let b = a + 1;
      while (b < nsym && !cuts[b]) b++;
      const bucket: number[] = [];
      for (let e = 0; e < los.length; e++) if (los[e]! <= a && a <= his[e]!) bucket.push(tos[e]!);
      if (bucket.length) {
        // Intervals with identical target sets share one closure computation.
        const k = bucket.join(',');
        let t = memo.get(k);
        if (t === undefined) { t = this.intern(this.closure(bucket)); memo.set(k, t); }
        targets.fill(t, a, b);
        if (t !== DEAD) live = 1;
      }
      a = b;
    }
    // intern() may have grown the tables: write after all interning.
    this.trans.set(targets.subarray(0, 256), s * 256);
    for (let k = 0; k < this.numSpecials; k++) this.specialTrans[s * this.numSpecials + k] = targets[SPECIAL_BASE + k]!;
    this.liveFlags[s] = live;
  }
}

/** Group flat records by their first field (the source state): offsets [n+1] and the remaining fields. */
function csr(n: number, flat: Int32Array, stride: number, rest: (e: Int32Array, i: number) => number[]): [Int32Array, Int32Array] {
  const count = new Int32Array(n + 1);
  for (let i = 0; i < flat.length; i += stride) count[flat[i]! + 1] = count[flat[i]! + 1]! + 1;
  for (let i = 0; i < n; i++) count[i + 1] = count[i + 1]! + count[i]!;
  const width = stride - 1;
  const data = new Int32Array((flat.length / stride) * width);
  const fill = count.slice(0, n);
  for (let i = 0; i < flat.length; i += stride) {
    const at = fill[flat[i]!]!;
    fill[flat[i]!] = at + 1;
    const r = rest(flat, i);
    for (let j = 0; j < width; j++) data[at * width + j] = r[j]!;
  }
  return [count, data];
}
