// Decoding one weight row of any storage dtype to f32: the reference linear, the embedding lookup and the host
// device all read weights through this.
import { decodeBf16, decodeF16 } from './dtype.js';
import { quantRowBytes, type Tensor } from './tensor.js';
import { formatOf } from '../quant/index.js';

/** Row j of a [N, K] weight as f32 into `dst`. */
export function weightRow(w: Tensor, j: number, k: number, dst: Float32Array): void {
  switch (w.dtype) {
    case 'f32':
      dst.set((w.data as Float32Array).subarray(w.offset + j * k, w.offset + (j + 1) * k));
      return;
    case 'bf16':
      decodeBf16((w.data as Uint16Array).subarray(w.offset + j * k, w.offset + (j + 1) * k), dst);
      return;
    case 'f16':
      decodeF16((w.data as Uint16Array).subarray(w.offset + j * k, w.offset + (j + 1) * k), dst);
      return;
    case 'q4_k':
    case 'q8_0': {
      formatOf(w.dtype).dequantizeRow(quantRowBytes(w, j), dst);
      return;
    }
    default:
      throw new Error(`linear: unsupported weight dtype ${w.dtype}`);
  }
}
