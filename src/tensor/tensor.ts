// The runtime's tensor: a typed buffer plus shape/strides/offset, so reshape, transpose and narrow are views.
// Quantized tensors are 2-D [rows, K] of back-to-back block rows; only row views are allowed on them.
import { decodeBf16, decodeF16, isQuantDType, type DType, type PlainDType } from './dtype.js';
import { formatOf } from '../quant/index.js';
import { deinterleaveX16, X16, x16Row, type QuantLayout } from '../quant/interleave.js';

export type TensorData = Float32Array | Uint16Array | Int32Array | Uint8Array;

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkShape(shape: readonly number[]): void {
  for (const d of shape) if (!Number.isInteger(d) || d < 0) throw new Error(`invalid tensor shape ${JSON.stringify(shape)}`);
}

export class Tensor {
  readonly shape: readonly number[];
  readonly strides: readonly number[];

  constructor(
    readonly dtype: DType,
    shape: readonly number[],
    /** f32: Float32Array; f16/bf16: raw Uint16Array; i32: Int32Array; u8 and quantized: Uint8Array. */
    readonly data: TensorData,
    strides?: readonly number[],
    /** Element offset into `data` (plain dtypes only). */
    readonly offset = 0,
    /** Row order of a quantized tensor: ggml rows, or interleaved by 16 for the native kernels (quant/interleave). */
    readonly layout: QuantLayout = 'rows',
  ) {
    checkShape(shape);
    this.shape = shape.slice();
    this.strides = strides ? strides.slice() : contiguousStrides(shape);
    if (isQuantDType(dtype)) {
      if (shape.length !== 2) throw new Error(`quantized tensor must be 2-D [rows, K], got ${JSON.stringify(shape)}`);
      const need = shape[0]! * formatOf(dtype).bytesPerBlock * (shape[1]! / formatOf(dtype).blockSize);
      if (data.byteLength < need) throw new Error(`${dtype} tensor ${JSON.stringify(shape)} needs ${need} bytes, got ${data.byteLength}`);
      if (layout === 'x16' && shape[0]! % X16 !== 0) throw new Error(`an x16 ${dtype} tensor needs a multiple of ${X16} rows, got ${shape[0]}`);
    } else if (layout !== 'rows') {
      throw new Error(`layout '${layout}' applies to quantized tensors only, not ${dtype}`);
    } else if (!strides && offset + numel(shape) > data.length) {
      throw new Error(`tensor ${dtype}${JSON.stringify(shape)} needs ${numel(shape)} elements from offset ${offset}, buffer has ${data.length}`);
    }
  }

  static f32(data: Float32Array | number[], shape?: readonly number[]): Tensor {
    const d = data instanceof Float32Array ? data : Float32Array.from(data);
    return new Tensor('f32', shape ?? [d.length], d);
  }

  static zeros(shape: readonly number[]): Tensor {
    return new Tensor('f32', shape, new Float32Array(numel(shape)));
  }

  get ndim(): number {
    return this.shape.length;
  }
  get size(): number {
    return numel(this.shape);
  }

  dim(i: number): number {
    const d = this.shape[i < 0 ? this.shape.length + i : i];
    if (d === undefined) throw new Error(`dim ${i} out of range for shape ${JSON.stringify(this.shape)}`);
    return d;
  }

  isContiguous(): boolean {
    if (isQuantDType(this.dtype)) return true;
    const c = contiguousStrides(this.shape);
    return this.shape.every((d, i) => d === 1 || this.strides[i] === c[i]);
  }

  /** A view with a new shape (one dim may be -1); copies only when the tensor is not contiguous. */
  reshape(shape: readonly number[]): Tensor {
    const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const resolved = shape.map((d) => (d === -1 ? this.size / known : d));
    if (numel(resolved) !== this.size) throw new Error(`cannot reshape ${JSON.stringify(this.shape)} to ${JSON.stringify(shape)}`);
    if (isQuantDType(this.dtype)) throw new Error(`cannot reshape a quantized tensor`);
    const src = this.isContiguous() ? this : this.contiguous();
    return new Tensor(src.dtype, resolved, src.data, undefined, src.offset);
  }

  /** Swap two dims (a view). */
  transpose(a: number, b: number): Tensor {
    const n = this.ndim;
    const perm = [...Array(n).keys()];
    const ia = a < 0 ? n + a : a, ib = b < 0 ? n + b : b;
    [perm[ia], perm[ib]] = [perm[ib]!, perm[ia]!];
    return this.permute(perm);
  }

  permute(perm: readonly number[]): Tensor {
    if (isQuantDType(this.dtype)) throw new Error(`cannot permute a quantized tensor`);
    if (perm.length !== this.ndim) throw new Error(`permute needs ${this.ndim} dims, got ${perm.length}`);
    return new Tensor(this.dtype, perm.map((p) => this.shape[p]!), this.data, perm.map((p) => this.strides[p]!), this.offset);
  }

  /** Elements [start, start+length) along `dim` (a view; for quantized tensors only dim 0). */
  narrow(dim: number, start: number, length: number): Tensor {
    const d = dim < 0 ? this.ndim + dim : dim;
    if (start < 0 || length < 0 || start + length > this.shape[d]!) throw new Error(`narrow(${dim}, ${start}, ${length}) out of range for ${JSON.stringify(this.shape)}`);
    const shape = this.shape.slice();
    shape[d] = length;
    if (isQuantDType(this.dtype)) {
      if (d !== 0) throw new Error(`quantized tensors can only be narrowed along rows`);
      const rb = rowBytesOf(this);
      // Whole groups of an x16 tensor stay x16; any other row range is read back into ggml rows.
      if (this.layout === 'x16' && (start % X16 !== 0 || length % X16 !== 0)) return this.rowMajor().narrow(0, start, length);
      const u8 = this.data as Uint8Array;
      return new Tensor(this.dtype, shape, u8.subarray(start * rb, (start + length) * rb), undefined, 0, this.layout);
    }
    return new Tensor(this.dtype, shape, this.data, this.strides, this.offset + start * this.strides[d]!);
  }

  /** Row-major copy (same dtype) unless already contiguous from offset 0. */
  contiguous(): Tensor {
    if (isQuantDType(this.dtype)) return this;
    if (this.isContiguous()) {
      if (this.offset === 0 && this.data.length === this.size) return this;
      return new Tensor(this.dtype, this.shape, this.data.slice(this.offset, this.offset + this.size) as TensorData);
    }
    const Ctor = this.data.constructor as { new (n: number): TensorData };
    const out = new Ctor(this.size);
    const n = this.ndim, shape = this.shape, strides = this.strides, src = this.data;
    const idx = new Array<number>(n).fill(0);
    let off = this.offset;
    for (let i = 0; i < out.length; i++) {
      out[i] = src[off]!;
      for (let d = n - 1; d >= 0; d--) {
        idx[d]!++;
        off += strides[d]!;
        if (idx[d]! < shape[d]!) break;
        off -= strides[d]! * shape[d]!;
        idx[d] = 0;
      }
    }
    return new Tensor(this.dtype, shape, out);
  }

  /** A quantized tensor in ggml rows (itself unless x16; then a de-interleaved copy). */
  rowMajor(): Tensor {
    if (this.layout === 'rows') return this;
    const [rows, k] = this.shape as [number, number];
    return new Tensor(this.dtype, this.shape, deinterleaveX16(this.dtype as 'q4_k' | 'q8_0', this.data as Uint8Array, rows, k));
  }

  /** A contiguous f32 tensor with the same values (decodes bf16/f16, dequantizes blocks). */
  toF32(): Tensor {
    if (this.dtype === 'f32') return this.contiguous();
    if (isQuantDType(this.dtype)) {
      const [rows, k] = this.shape as [number, number];
      const out = new Float32Array(rows * k);
      const f = formatOf(this.dtype), rb = rowBytesOf(this), u8 = this.rowMajor().data as Uint8Array;
      for (let r = 0; r < rows; r++) f.dequantizeRow(u8.subarray(r * rb, (r + 1) * rb), out.subarray(r * k, (r + 1) * k));
      return new Tensor('f32', this.shape, out);
    }
    const c = this.contiguous();
    const plain = c.dtype as PlainDType;
    const d = c.data;
    const out =
      plain === 'bf16' ? decodeBf16(d as Uint16Array)
      : plain === 'f16' ? decodeF16(d as Uint16Array)
      : Float32Array.from(d as ArrayLike<number>);
    return new Tensor('f32', this.shape, out);
  }

  /** The contiguous f32 buffer of this tensor (decoding if needed). Do not write to it unless you own it. */
  f32(): Float32Array {
    return this.toF32().data as Float32Array;
  }

  /** One element (plain dtypes), for tests and debugging. */
  get(...idx: number[]): number {
    if (isQuantDType(this.dtype)) return this.toF32().get(...idx);
    let off = this.offset;
    idx.forEach((v, i) => (off += v * this.strides[i]!));
    const raw = this.data[off]!;
    if (this.dtype === 'bf16') return decodeBf16(Uint16Array.of(raw))[0]!;
    if (this.dtype === 'f16') return decodeF16(Uint16Array.of(raw))[0]!;
    return raw;
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}])`;
  }
}

/** Bytes per row of a quantized [rows, K] tensor. */
export function rowBytesOf(t: Tensor): number {
  const f = formatOf(t.dtype as 'q4_k' | 'q8_0');
  return (t.shape[1]! / f.blockSize) * f.bytesPerBlock;
}

/**
 * A 2-D plain tensor stored column-major (strides [1, rows]): its buffer holds the transpose, row-major. The
 * native backend places LoRA factors this way (NativeBackend.columnMajor).
 */
export function isColumnMajor(t: Tensor): boolean {
  return t.ndim === 2 && !isQuantDType(t.dtype) && t.shape[0]! > 1 && t.strides[0] === 1 && t.strides[1] === t.shape[0];
}

/** The ggml bytes of row j of a quantized tensor (a view for 'rows'; copied into `scratch` for x16). */
export function quantRowBytes(t: Tensor, j: number, scratch?: Uint8Array): Uint8Array {
  const rb = rowBytesOf(t), u8 = t.data as Uint8Array;
  if (t.layout === 'rows') return u8.subarray(j * rb, (j + 1) * rb);
  const dst = scratch && scratch.length >= rb ? scratch.subarray(0, rb) : new Uint8Array(rb);
  x16Row(t.dtype as 'q4_k' | 'q8_0', u8, t.shape[0]!, t.shape[1]!, j, dst);
  return dst;
}
