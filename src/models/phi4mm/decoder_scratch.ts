// Named work buffers reused across layers and decode steps, so the token loop allocates no big arrays.
export class Scratch {
  private readonly bufs = new Map<string, Float32Array>();

  /** `n` floats under `key` (contents left over from the last use); grows the buffer when too small. */
  get(key: string, n: number): Float32Array {
    let b = this.bufs.get(key);
    if (!b || b.length < n) this.bufs.set(key, (b = new Float32Array(n)));
    return b.subarray(0, n);
  }
}
