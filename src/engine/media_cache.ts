// Projected encoder outputs keyed by content hash + processor settings, evicted least-recently-used by bytes.
// A request pins its entry while it prefills (a pinned entry is never evicted, even over budget).
import { createHash } from 'node:crypto';

interface Entry {
  features: Float32Array[];
  bytes: number;
  pins: number;
}

export class MediaCache {
  private readonly map = new Map<string, Entry>(); // insertion order = LRU order (touched entries move to the end)
  private used = 0;
  hits = 0;
  misses = 0;

  constructor(readonly budgetBytes: number) {}

  get bytes(): number {
    return this.used;
  }
  get size(): number {
    return this.map.size;
  }

  /** Features for `key`, computing them with `encode` on a miss; pinned until `unpin(key)`. */
  acquire(key: string, encode: () => Float32Array[]): { features: Float32Array[]; hit: boolean } {
    let e = this.map.get(key);
    const hit = e !== undefined;
    if (e) {
      this.map.delete(key);
      this.hits++;
    } else {
      const features = encode();
      e = { features, bytes: features.reduce((a, f) => a + f.byteLength, 0), pins: 0 };
      this.used += e.bytes;
      this.misses++;
    }
    e.pins++;
    this.map.set(key, e);
    this.evict();
    return { features: e.features, hit };
  }

  unpin(key: string): void {
    const e = this.map.get(key);
    if (!e) return;
    e.pins = Math.max(0, e.pins - 1);
    this.evict();
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  private evict(): void {
    for (const [k, e] of this.map) {
      if (this.used <= this.budgetBytes) return;
      if (e.pins > 0) continue;
      this.map.delete(k);
      this.used -= e.bytes;
    }
  }
}

/** A content key: sha256 over the parts (strings, numbers, typed arrays), order-sensitive. */
export function contentKey(...parts: (string | number | ArrayBufferView)[]): string {
  const h = createHash('sha256');
  for (const p of parts) {
    if (typeof p === 'string' || typeof p === 'number') h.update(`${typeof p}:${p};`);
    else h.update(new Uint8Array(p.buffer, p.byteOffset, p.byteLength)).update(`#${p.byteLength};`);
  }
  return h.digest('base64url');
}
