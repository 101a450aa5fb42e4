// The oracle of the native DeviceOps tests: the host device (src/tensor/host_device.ts) over the reference
// backend, i.e. the TypeScript statement of every op, plus the byte codecs the native KV pool must store
// (dtype.ts f16, src/quant's Q8_0).
import { HostBuf, HostDevice } from '../../src/tensor/host_device.js';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import { encodeF16 } from '../../src/tensor/dtype.js';
import { quantizeRowQ8_0 } from '../../src/quant/index.js';
import type { KvSpec } from '../../src/tensor/device.js';

export const oracle = new HostDevice(new ReferenceBackend());

/** A host buffer holding a copy of `a`. */
export function hbuf(a: Float32Array): HostBuf {
  return new HostBuf(a.slice());
}

/**
 * The bytes a KV row of `d` values is stored as in `dtype`: f32 as is, dtype.ts f16, or ggml's Q8_0 on groups of
 * 32 (the last one zero-padded) laid out as the groups' f16 scales, then the d int8 values.
 */
export function storedBytes(dtype: KvSpec['dtype'], row: Float32Array): Uint8Array {
  switch (dtype) {
    case 'f32':
      return new Uint8Array(row.slice().buffer);
    case 'f16':
      return new Uint8Array(encodeF16(row).buffer);
    case 'q8_0': {
      const groups = Math.ceil(row.length / 32), out = new Uint8Array(2 * groups + row.length), blk = new Uint8Array(34);
      for (let g = 0; g < groups; g++) {
        const x = new Float32Array(32), n = Math.min(32, row.length - 32 * g);
        x.set(row.subarray(32 * g, 32 * g + n));
        quantizeRowQ8_0(x, blk);
        out.set(blk.subarray(0, 2), 2 * g);
        out.set(blk.subarray(2, 2 + n), 2 * groups + 32 * g);
      }
      return out;
    }
  }
}
