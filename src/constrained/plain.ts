// The fast path for string contents. Most of the 200k tokens are "plain": bytes that are, inside a JSON string,
// whole unescaped characters (printable ASCII but " and \, or well-formed UTF-8 sequences). In a DFA state where
// every plain character leads to one and the same successor (inside a free string: itself; inside a string with
// maxLength: the next position), a plain token of c characters is allowed iff c such uniform steps exist. So the
// mask there is "every plain token up to c characters" (a prefix of a list sorted by c) plus a walk of the small
// trie of the remaining tokens, instead of a walk of the whole trie. Exact: it is the same set the full walk finds.
import { DEAD, type LazyDfa } from './dfa.js';

/** Byte ranges of one well-formed UTF-8 character, per lead class (as json_lexical.char() accepts them). */
const CHAR_SHAPES: [number, number][][] = [
  [[0x20, 0x21]], [[0x23, 0x5b]], [[0x5d, 0x7f]],
  [[0xc2, 0xdf], [0x80, 0xbf]],
  [[0xe0, 0xe0], [0xa0, 0xbf], [0x80, 0xbf]],
  [[0xe1, 0xec], [0x80, 0xbf], [0x80, 0xbf]],
  [[0xed, 0xed], [0x80, 0x9f], [0x80, 0xbf]],
  [[0xee, 0xef], [0x80, 0xbf], [0x80, 0xbf]],
  [[0xf0, 0xf0], [0x90, 0xbf], [0x80, 0xbf], [0x80, 0xbf]],
  [[0xf1, 0xf3], [0x80, 0xbf], [0x80, 0xbf], [0x80, 0xbf]],
  [[0xf4, 0xf4], [0x80, 0x8f], [0x80, 0xbf], [0x80, 0xbf]],
];

/** Number of characters if `bin` (one char per byte) is plain string content, else -1. */
export function plainChars(bin: string): number {
  let chars = 0;
  for (let i = 0; i < bin.length;) {
    const shape = CHAR_SHAPES.find((s) => inRange(bin.charCodeAt(i), s[0]!));
    if (!shape || i + shape.length > bin.length) return -1;
    for (let k = 1; k < shape.length; k++) if (!inRange(bin.charCodeAt(i + k), shape[k]!)) return -1;
    i += shape.length;
    chars++;
  }
  return chars;
}

function inRange(b: number, r: [number, number]): boolean {
  return b >= r[0] && b <= r[1];
}

/**
 * The state every plain character leads to from `s`, or DEAD when plain characters do not all lead to one
 * state. Probes every byte of every character shape; intermediate states already verified are not re-probed.
 */
export function uniformSuccessor(dfa: LazyDfa, s: number): number {
  const target = dfa.next(s, 0x61); // 'a'
  if (target === DEAD) return DEAD;
  const verified = new Set<string>();
  const check = (state: number, shape: [number, number][], k: number): boolean => {
    const key = `${state}:${shape.slice(k).flat().join(',')}`;
    if (verified.has(key)) return true;
    const [lo, hi] = shape[k]!;
    for (let b = lo; b <= hi; b++) {
      const t = dfa.next(state, b);
      if (k === shape.length - 1 ? t !== target : t === DEAD || !check(t, shape, k + 1)) return false;
    }
    verified.add(key);
    return true;
  };
  for (const shape of CHAR_SHAPES) if (!check(s, shape, 0)) return DEAD;
  return target;
}

/** Characters a plain token can hold at most here: 0 = not a uniform state; capped at `cap` (longest plain token). */
export class PlainChains {
  private readonly succ = new Map<number, number>();
  private readonly runs = new Map<number, number>();

  constructor(private readonly dfa: LazyDfa, private readonly cap: number) {}

  successor(s: number): number {
    let t = this.succ.get(s);
    if (t === undefined) { t = uniformSuccessor(this.dfa, s); this.succ.set(s, t); }
    return t;
  }

  /** How many uniform steps follow from `s` (a self-loop counts as `cap`). */
  run(s: number): number {
    const hit = this.runs.get(s);
    if (hit !== undefined) return hit;
    let n = 0, cur = s;
    const seen = new Set<number>();
    while (n < this.cap) {
      const t = this.successor(cur);
      if (t === DEAD) break;
      if (seen.has(cur)) { n = this.cap; break; } // a cycle of uniform states: unbounded
      seen.add(cur);
      n++;
      cur = t;
    }
    this.runs.set(s, n);
    return n;
  }
}
