// Safetensors reader and writer. The file is never read whole (a Buffer caps at 4 GiB and shards are ~5 GB):
// the header is parsed, then each tensor is read at its own offset.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { decodeBf16, decodeF16, encodeBf16, encodeF16 } from '../tensor/dtype.js';

export type StDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL' | 'U16' | 'U32' | 'U64';

export const ST_DTYPE_BYTES: Record<StDType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8,
};

export interface StTensorInfo {
  name: string;
  dtype: StDType;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
  file: string;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function readExact(fd: number, buf: Uint8Array, position: number, what: string, file: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) throw new SafetensorsError(`${file}: unexpected end of file while reading ${what} (file truncated?)`);
    done += n;
  }
}

/** One `.safetensors` file, read lazily tensor by tensor. */
export class SafetensorsFile {
  readonly tensors = new Map<string, StTensorInfo>();
  readonly metadata: Record<string, string>;
  private fd: number | null;

  private constructor(readonly path: string, fd: number) {
    this.fd = fd;
    const size = fstatSync(fd).size;
    if (size < 8) throw new SafetensorsError(`${path}: ${size} bytes is too small for a safetensors file (need an 8-byte header length)`);
    const lenBuf = Buffer.alloc(8);
    readExact(fd, lenBuf, 0, 'header length', path);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
      throw new SafetensorsError(`${path}: header length ${headerLen} does not fit the file (${size} bytes): not a safetensors file, or truncated`);
    }
    const hbuf = Buffer.alloc(headerLen);
    readExact(fd, hbuf, 8, 'header', path);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(hbuf.toString('utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new SafetensorsError(`${path}: header is not valid JSON (${(e as Error).message})`);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new SafetensorsError(`${path}: header is not a JSON object`);
    this.metadata = (header['__metadata__'] as Record<string, string> | undefined) ?? {};
    const dataStart = 8 + headerLen;
    for (const [name, v] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = v as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
      if (!e || typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) {
        throw new SafetensorsError(`${path}: tensor "${name}" has a malformed header entry (needs dtype, shape, data_offsets)`);
      }
      if (!(e.dtype in ST_DTYPE_BYTES)) throw new SafetensorsError(`${path}: tensor "${name}" has unknown dtype "${e.dtype}" (supported: ${Object.keys(ST_DTYPE_BYTES).join(', ')})`);
      const dtype = e.dtype as StDType;
      const [b, en] = e.data_offsets;
      const numel = e.shape.reduce((a, s) => a * s, 1);
      if (en - b !== numel * ST_DTYPE_BYTES[dtype]) {
        throw new SafetensorsError(`${path}: tensor "${name}" spans ${en - b} bytes but ${dtype}${JSON.stringify(e.shape)} needs ${numel * ST_DTYPE_BYTES[dtype]}`);
      }
      if (b < 0 || dataStart + en > size) {
        throw new SafetensorsError(`${path}: tensor "${name}" lies at bytes [${dataStart + b}, ${dataStart + en}) beyond the end of the file (${size} bytes): file truncated?`);
      }
      this.tensors.set(name, { name, dtype, shape: e.shape.slice(), begin: dataStart + b, end: dataStart + en, file: path });
    }
  }

  static open(path: string): SafetensorsFile {
    if (!existsSync(path)) throw new SafetensorsError(`${path}: no such file`);
    const fd = openSync(path, 'r');
    try {
      return new SafetensorsFile(path, fd);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): StTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(`${this.path}: no tensor named "${name}"`);
    return t;
  }

  /** Raw little-endian bytes of one tensor, in a fresh aligned buffer or in `into` (exactly its size). */
  readRaw(name: string, into?: Uint8Array): Uint8Array {
    const t = this.info(name);
    if (this.fd === null) throw new SafetensorsError(`${this.path}: file already closed`);
    if (into && into.length !== t.end - t.begin) throw new SafetensorsError(`${this.path}: tensor "${name}" has ${t.end - t.begin} bytes, the buffer given for it ${into.length}`);
    // ArrayBuffer (not a pooled Buffer) so typed views over it are always aligned.
    const out = into ?? new Uint8Array(new ArrayBuffer(t.end - t.begin));
    readExact(this.fd, out, t.begin, `tensor "${name}"`, this.path);
    return out;
  }

  /** Any float/int tensor decoded to f32 (bf16/f16 by hand; I64 via Number, exact below 2^53). */
  readF32(name: string): Float32Array {
    return rawToF32(this.readRaw(name), this.info(name).dtype);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export function rawToF32(raw: Uint8Array, dtype: StDType): Float32Array {
  const buf = raw.buffer;
  const off = raw.byteOffset;
  switch (dtype) {
    case 'F32': return new Float32Array(buf, off, raw.byteLength / 4);
    case 'BF16': return decodeBf16(new Uint16Array(buf, off, raw.byteLength / 2));
    case 'F16': return decodeF16(new Uint16Array(buf, off, raw.byteLength / 2));
    case 'F64': return Float32Array.from(new Float64Array(buf, off, raw.byteLength / 8));
    case 'I64': return Float32Array.from(new BigInt64Array(buf, off, raw.byteLength / 8), (v) => Number(v));
    case 'U64': return Float32Array.from(new BigUint64Array(buf, off, raw.byteLength / 8), (v) => Number(v));
    case 'I32': return Float32Array.from(new Int32Array(buf, off, raw.byteLength / 4));
    case 'U32': return Float32Array.from(new Uint32Array(buf, off, raw.byteLength / 4));
    case 'I16': return Float32Array.from(new Int16Array(buf, off, raw.byteLength / 2));
    case 'U16': return Float32Array.from(new Uint16Array(buf, off, raw.byteLength / 2));
    case 'I8': return Float32Array.from(new Int8Array(buf, off, raw.byteLength));
    case 'U8': case 'BOOL': return Float32Array.from(raw);
  }
}

/**
 * A checkpoint: one `.safetensors` file, a folder with `model.safetensors`, or a sharded folder with
 * `model.safetensors.index.json`. Names map to the shard that holds them.
 */
export class SafetensorsCheckpoint {
  private readonly files: SafetensorsFile[] = [];
  private readonly where = new Map<string, SafetensorsFile>();

  constructor(paths: string[]) {
    for (const p of paths) {
      const f = SafetensorsFile.open(p);
      this.files.push(f);
      for (const n of f.names()) {
        if (this.where.has(n)) throw new SafetensorsError(`tensor "${n}" appears in both ${this.where.get(n)!.path} and ${p}`);
        this.where.set(n, f);
      }
    }
  }

  /** Open `dir/model.safetensors.index.json` (sharded) or `dir/model.safetensors`, or a file path. */
  static open(pathOrDir: string, indexName = 'model.safetensors.index.json', singleName = 'model.safetensors'): SafetensorsCheckpoint {
    if (pathOrDir.endsWith('.safetensors')) return new SafetensorsCheckpoint([pathOrDir]);
    const idx = join(pathOrDir, indexName);
    if (existsSync(idx)) {
      let index: { weight_map?: Record<string, string> };
      try {
        index = JSON.parse(readFileSync(idx, 'utf8'));
      } catch (e) {
        throw new SafetensorsError(`${idx}: not valid JSON (${(e as Error).message})`);
      }
      if (!index.weight_map || typeof index.weight_map !== 'object') throw new SafetensorsError(`${idx}: has no "weight_map" object`);
      const shards = [...new Set(Object.values(index.weight_map))].sort();
      const ck = new SafetensorsCheckpoint(shards.map((s) => join(pathOrDir, s)));
      const missing = Object.keys(index.weight_map).filter((n) => !ck.has(n));
      if (missing.length) throw new SafetensorsError(`${idx}: ${missing.length} tensors listed in the index are absent from their shards (first: ${missing.slice(0, 3).join(', ')})`);
      return ck;
    }
    const single = join(pathOrDir, singleName);
    if (existsSync(single)) return new SafetensorsCheckpoint([single]);
    throw new SafetensorsError(`${pathOrDir}: neither ${indexName} nor ${singleName} found`);
  }

  names(): string[] {
    return [...this.where.keys()];
  }
  /** The files opened (one, or the shards). */
  paths(): string[] {
    return this.files.map((f) => f.path);
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  info(name: string): StTensorInfo {
    const f = this.where.get(name);
    if (!f) throw new SafetensorsError(`no tensor named "${name}" in ${this.files.map((x) => x.path).join(', ')}`);
    return f.info(name);
  }
  readRaw(name: string, into?: Uint8Array): Uint8Array {
    return this.fileOf(name).readRaw(name, into);
  }
  readF32(name: string): Float32Array {
    return this.fileOf(name).readF32(name);
  }
  /** The `__metadata__` of the file that holds `name`. */
  metadataOf(name: string): Record<string, string> {
    return this.fileOf(name).metadata;
  }
  close(): void {
    for (const f of this.files) f.close();
  }
  private fileOf(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (!f) throw new SafetensorsError(`no tensor named "${name}" in ${this.files.map((x) => x.path).join(', ')}`);
    return f;
  }
}

export interface StWriteTensor {
  name: string;
  dtype: StDType;
  shape: number[];
  /** Raw bytes, or f32 values to be encoded as `dtype` (F32/BF16/F16 only). */
  data: Uint8Array | Float32Array | (() => Uint8Array | Float32Array);
}

function toBytes(t: StWriteTensor, d: Uint8Array | Float32Array): Uint8Array {
  if (d instanceof Uint8Array) return d;
  switch (t.dtype) {
    case 'F32': return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    case 'BF16': { const u = encodeBf16(d); return new Uint8Array(u.buffer, u.byteOffset, u.byteLength); }
    case 'F16': { const u = encodeF16(d); return new Uint8Array(u.buffer, u.byteOffset, u.byteLength); }
    default: throw new SafetensorsError(`tensor "${t.name}": f32 data can only be written as F32/BF16/F16, not ${t.dtype}`);
  }
}

/**
 * Write a safetensors file. Tensor data may be given lazily (a function), so a large checkpoint is
 * streamed tensor by tensor and never held in memory at once.
 */
export function writeSafetensors(path: string, tensors: StWriteTensor[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header['__metadata__'] = metadata;
  let off = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, s) => a * s, 1) * ST_DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  let hjson = JSON.stringify(header);
  // Pad the header with spaces so tensor data starts 8-byte aligned, as the reference writer does.
  while ((8 + Buffer.byteLength(hjson)) % 8 !== 0) hjson += ' ';
  const hbytes = Buffer.from(hjson, 'utf8');
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(hbytes.length));
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, lenBuf);
    writeSync(fd, hbytes);
    for (const t of tensors) {
      const raw = toBytes(t, typeof t.data === 'function' ? t.data() : t.data);
      const want = t.shape.reduce((a, s) => a * s, 1) * ST_DTYPE_BYTES[t.dtype];
      if (raw.byteLength !== want) throw new SafetensorsError(`tensor "${t.name}": got ${raw.byteLength} bytes, ${t.dtype}${JSON.stringify(t.shape)} needs ${want}`);
      let done = 0;
      while (done < raw.byteLength) done += writeSync(fd, raw, done, raw.byteLength - done);
    }
  } finally {
    closeSync(fd);
  }
}

export function checkpointDir(p: string): string {
  return p.endsWith('.safetensors') ? dirname(p) : p;
}
