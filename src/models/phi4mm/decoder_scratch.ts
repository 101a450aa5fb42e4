// Named device work buffers reused across layers and forwards, so a decode step allocates nothing.
import type { Buf, DeviceOps } from '../../tensor/device.js';

export class DeviceScratch {
  private readonly bufs = new Map<string, Buf>();
  constructor(readonly dev: DeviceOps) {}

  /** A buffer of at least `n` values under `key` (contents left over from the last use). */
  get(key: string, n: number): Buf {
    const b = this.bufs.get(key);
    if (b && b.size >= n) return b;
    // Grow geometrically so prefill chunks of slowly rising size do not reallocate every time.
    const nb = this.dev.alloc(Math.max(n, b ? Math.min(2 * b.size, n * 2) : n));
    this.bufs.set(key, nb);
    return nb;
  }
}
