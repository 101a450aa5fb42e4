// The block pool and the prefix keys: allocation, sharing, LRU eviction of unreferenced cached blocks.
import { describe, expect, it } from 'vitest';
import { BlockPool, blockKeys, rowMedia } from '../../src/engine/blocks.js';
import { MediaCache } from '../../src/engine/media_cache.js';

describe('BlockPool', () => {
  it('hands out every block once, refuses beyond, and takes them back', () => {
    const p = new BlockPool(4, 16);
    const got = p.allocateMany(4)!;
    expect(new Set(got).size).toBe(4);
    expect(p.allocate()).toBe(null);
    expect(p.allocateMany(1)).toBe(null);
    p.releaseAll(got);
    expect(p.available).toBe(4);
    expect(() => p.release(got[0]!)).toThrow(/released more often/);
  });

  it('cached blocks outlive their sequence and are evicted least recently used', () => {
    const p = new BlockPool(3, 16);
    const [a, b, c] = p.allocateMany(3)!;
    p.register(a!, 'ka');
    p.register(b!, 'kb');
    p.releaseAll([a!, b!, c!]);
    expect(p.available).toBe(3);
    expect(p.cachedCount).toBe(2);
    expect(p.lookup(['ka'])).toEqual([a]); // a is referenced again: b is now the LRU cached block
    p.release(a!);
    const x = p.allocate(), y = p.allocate();
    expect(x).toBe(c); // the free block first
    expect(y).toBe(b); // then the least recently used cached one (b, not the recently used a)
    expect(p.peek(['ka', 'kb'])).toBe(1);
    expect(p.evictions).toBe(1);
  });

  it('a lookup stops at the first miss; a duplicate key keeps the older block', () => {
    const p = new BlockPool(4, 16);
    const [a, b] = p.allocateMany(2)!;
    p.register(a!, 'k1');
    p.register(b!, 'k1');
    expect(p.lookup(['k1', 'k2', 'k1'])).toEqual([a]);
    expect(p.refCount(a!)).toBe(2);
  });
});

describe('blockKeys', () => {
  const ids = Array.from({ length: 40 }, (_, i) => i + 1);
  it('is a chain: a change in block 0 changes every later key; full blocks only', () => {
    const k = blockKeys(ids, 40, 16, 'language', false, null);
    expect(k).toHaveLength(2);
    const changed = blockKeys([99, ...ids.slice(1)], 40, 16, 'language', false, null);
    expect(changed[0]).not.toBe(k[0]);
    expect(changed[1]).not.toBe(k[1]);
    expect(blockKeys(ids, 40, 16, 'language', false, null, k.slice(0, 1))).toEqual(k); // extends
  });

  it('mixes in the mode, the LongRoPE regime and the media behind placeholder rows', () => {
    const base = blockKeys(ids, 32, 16, 'vision', false, null);
    expect(blockKeys(ids, 32, 16, 'speech', false, null)[0]).not.toBe(base[0]);
    expect(blockKeys(ids, 32, 16, 'vision', true, null)[0]).not.toBe(base[0]);
    const withImg = [1, 200010, 200010, 4, ...ids.slice(4)];
    const img = (key: string) => rowMedia(withImg, [{ kind: 'image', key, items: [{ kind: 'image', key, rows: 2 }] }], { image: 200010, audio: 200011 });
    const a = blockKeys(withImg, 32, 16, 'vision', false, img('A')), b = blockKeys(withImg, 32, 16, 'vision', false, img('B'));
    expect(a[0]).not.toBe(b[0]);
    expect(blockKeys(withImg, 32, 16, 'vision', false, img('A'))).toEqual(a);
    expect(() => rowMedia([1, 200010], [{ kind: 'image', key: 'x', items: [{ kind: 'image', key: 'x', rows: 2 }] }], { image: 200010, audio: 200011 })).toThrow(/fewer image placeholder rows/);
  });
});

describe('MediaCache', () => {
  it('encodes once per key, evicts least recently used by bytes, never a pinned entry', () => {
    const c = new MediaCache(100);
    let calls = 0;
    const enc = (n: number) => () => { calls++; return [new Float32Array(n)]; };
    expect(c.acquire('a', enc(10)).hit).toBe(false); // 40 bytes, pinned
    expect(c.acquire('a', enc(10)).hit).toBe(true);
    expect(calls).toBe(1);
    c.unpin('a');
    c.unpin('a');
    c.acquire('b', enc(10));
    c.unpin('b');
    c.acquire('c', enc(10)); // 120 bytes > 100: evict the LRU unpinned one (a)
    expect(c.has('a')).toBe(false);
    expect(c.has('b')).toBe(true);
    expect(c.bytes).toBe(80);
    c.acquire('d', enc(30)); // c is pinned, b goes; still over budget with pins held
    expect(c.has('b')).toBe(false);
    expect(c.has('c')).toBe(true);
  });
});
