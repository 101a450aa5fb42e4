// Resolve a media source (URL, path, data: URL, raw base64 or bytes) to its encoded bytes.
// Shared by the image and audio front ends; decoding happens elsewhere.
import { lookup } from 'node:dns/promises';
import { existsSync, statSync } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { isIP } from 'node:net';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** http(s) URL, file path, file:// URL, data: URL, raw base64, or the encoded bytes themselves. */
export type MediaSource = string | Uint8Array | ArrayBuffer;

export interface MediaFetchOptions {
  /** Whole-request limit for http(s), in milliseconds (default 30 000). */
  timeoutMs?: number;
  /** Largest accepted payload in bytes (default 64 MiB for images, 256 MiB for audio). */
  maxBytes?: number;
  /** Redirects followed before giving up (default 5). */
  maxRedirects?: number;
  /** Allow URLs that resolve to loopback/private/link-local addresses (default true: a library user owns the machine). */
  allowPrivateNetwork?: boolean;
  /** true: any local path; false: none; a string: only paths inside that directory (default true). */
  allowLocalFiles?: boolean | string;
  signal?: AbortSignal;
}

export type MediaErrorCode =
  | 'fetch_failed' | 'too_large' | 'timeout' | 'too_many_redirects' | 'forbidden_path' | 'not_found'
  | 'private_address' | 'bad_base64' | 'bad_url' | 'unsupported_format' | 'decode_failed' | 'empty';

export class MediaError extends Error {
  constructor(public code: MediaErrorCode | string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MediaError';
  }
}

const MIB = 1024 * 1024;
const DEFAULT_MAX_BYTES = { image: 64 * MIB, audio: 256 * MIB } as const;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_REDIRECTS = 5;
// Raw base64 shorter than this is far more likely to be a mistyped path than a media payload.
const MIN_RAW_BASE64_CHARS = 64;
const MAX_PATH_CHARS = 4096;

export async function loadMediaBytes(src: MediaSource, kind: 'image' | 'audio', opts: MediaFetchOptions = {}): Promise<Uint8Array> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES[kind];
  let bytes: Uint8Array;
  if (src instanceof Uint8Array) bytes = src;
  else if (src instanceof ArrayBuffer) bytes = new Uint8Array(src);
  else if (typeof src === 'string') bytes = await loadFromString(src.trim(), kind, opts, maxBytes);
  else throw new MediaError('unsupported_format', `${kind} source must be a string, Uint8Array or ArrayBuffer, got ${typeof src}`);
  if (bytes.length === 0) throw new MediaError('empty', `${kind} source is empty (0 bytes)`);
  if (bytes.length > maxBytes) throw new MediaError('too_large', `${kind} is ${bytes.length} bytes, more than the limit of ${maxBytes}`);
  return bytes;
}

async function loadFromString(s: string, kind: string, opts: MediaFetchOptions, maxBytes: number): Promise<Uint8Array> {
  if (s.length === 0) throw new MediaError('empty', `${kind} source is an empty string`);
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(s)?.[1]?.toLowerCase();
  if (scheme === 'http' || scheme === 'https') return fetchUrl(s, kind, opts, maxBytes);
  if (scheme === 'data') return decodeDataUrl(s, kind);
  if (scheme === 'file') {
    let path: string;
    try { path = fileURLToPath(s); } catch (e) { throw new MediaError('bad_url', `invalid file:// URL for ${kind}: ${(e as Error).message}`); }
    return readLocal(path, kind, opts, maxBytes);
  }
  // An existing file wins over every other reading; otherwise the base64 alphabet (no '.', '\\', ':' or spaces)
  // and a minimum length separate payloads from paths. Paths that exist nowhere get a clear not_found.
  if (s.length < MAX_PATH_CHARS && existsSync(s)) return readLocal(s, kind, opts, maxBytes);
  if (isRawBase64(s)) return decodeBase64(s, kind);
  if (scheme && scheme.length > 1) throw new MediaError('bad_url', `unsupported URL scheme "${scheme}:" for ${kind}; use http(s):, file:, data: or raw base64`);
  return readLocal(s, kind, opts, maxBytes);
}

function isRawBase64(s: string): boolean {
  const compact = s.replace(/[\r\n]+/g, '');
  return compact.length >= MIN_RAW_BASE64_CHARS && /^[A-Za-z0-9+/_-]+={0,2}$/.test(compact);
}

function decodeBase64(s: string, kind: string): Uint8Array {
  const compact = s.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(compact) || compact.length % 4 === 1) {
    throw new MediaError('bad_base64', `${kind} base64 payload is malformed (invalid characters or length)`);
  }
  const buf = Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64');
  if (buf.length === 0) throw new MediaError('bad_base64', `${kind} base64 payload decodes to 0 bytes`);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

function decodeDataUrl(s: string, kind: string): Uint8Array {
  const comma = s.indexOf(',');
  if (comma < 0) throw new MediaError('bad_url', `${kind} data: URL has no comma separating header and payload`);
  const header = s.slice(5, comma).toLowerCase();
  const payload = s.slice(comma + 1);
  if (header.split(';').includes('base64')) return decodeBase64(payload, kind);
  let text: string;
  try { text = decodeURIComponent(payload); } catch { throw new MediaError('bad_url', `${kind} data: URL has invalid percent-encoding`); }
  const buf = Buffer.from(text, 'latin1');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

async function readLocal(path: string, kind: string, opts: MediaFetchOptions, maxBytes: number): Promise<Uint8Array> {
  const allow = opts.allowLocalFiles ?? true;
  if (allow === false) throw new MediaError('forbidden_path', `local files are not allowed as ${kind} sources`);
  let real: string;
  try { real = await realpath(resolve(path)); } catch {
    throw new MediaError('not_found', `${kind} file not found: ${path} (give an existing path, a URL, a data: URL or base64)`);
  }
  if (typeof allow === 'string') {
    const root = await realpath(resolve(allow)).catch(() => resolve(allow));
    const rel = relative(root, real);
    if (rel === '' || rel.startsWith('..' + sep) || rel === '..' || isAbsolute(rel)) {
      throw new MediaError('forbidden_path', `${kind} path ${path} lies outside the allowed directory ${allow}`);
    }
  }
  const st = statSync(real);
  if (!st.isFile()) throw new MediaError('not_found', `${kind} path is not a regular file: ${path}`);
  if (st.size > maxBytes) throw new MediaError('too_large', `${kind} file ${path} is ${st.size} bytes, more than the limit of ${maxBytes}`);
  const fh = await open(real, 'r');
  try {
    const buf = await fh.readFile();
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------- http(s)

async function fetchUrl(url0: string, kind: string, opts: MediaFetchOptions, maxBytes: number): Promise<Uint8Array> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxRedirects = opts.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  let url = url0;
  try {
    for (let hop = 0; ; hop++) {
      let parsed: URL;
      try { parsed = new URL(url); } catch { throw new MediaError('bad_url', `invalid ${kind} URL: ${url}`); }
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
        throw new MediaError('bad_url', `${kind} URL redirected to unsupported scheme ${parsed.protocol}`);
      }
      if (!(opts.allowPrivateNetwork ?? true)) await assertPublicHost(parsed.hostname, kind);
      const res = await fetch(parsed, { redirect: 'manual', signal });
      if (res.status >= 300 && res.status < 400 && res.headers.has('location')) {
        await res.body?.cancel();
        if (hop >= maxRedirects) throw new MediaError('too_many_redirects', `${kind} URL ${url0} redirected more than ${maxRedirects} times`);
        url = new URL(res.headers.get('location')!, parsed).toString();
        continue;
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new MediaError('fetch_failed', `fetching ${kind} from ${url} failed: HTTP ${res.status} ${res.statusText}`);
      }
      return await readBodyCapped(res, kind, url, maxBytes);
    }
  } catch (e) {
    if (e instanceof MediaError) throw e;
    if (timeout.aborted) throw new MediaError('timeout', `fetching ${kind} from ${url} timed out after ${timeoutMs} ms`, { cause: e });
    if (opts.signal?.aborted) throw new MediaError('fetch_failed', `fetching ${kind} from ${url} was aborted`, { cause: e });
    throw new MediaError('fetch_failed', `fetching ${kind} from ${url} failed: ${(e as Error).message}`, { cause: e });
  }
}

async function readBodyCapped(res: Response, kind: string, url: string, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) {
    await res.body?.cancel();
    throw new MediaError('too_large', `${kind} at ${url} is ${declared} bytes, more than the limit of ${maxBytes}`);
  }
  if (!res.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxBytes) {
      await reader.cancel();
      throw new MediaError('too_large', `${kind} at ${url} exceeds the limit of ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) { out.set(c, off); off += c.length; }
  return out;
}

async function assertPublicHost(hostname: string, kind: string): Promise<void> {
  const host = hostname.replace(/^\[|\]$/g, '');
  let addrs: string[];
  if (isIP(host)) addrs = [host];
  else {
    try { addrs = (await lookup(host, { all: true })).map((a) => a.address); } catch (e) {
      throw new MediaError('fetch_failed', `cannot resolve host ${host} for ${kind}: ${(e as Error).message}`, { cause: e });
    }
  }
  for (const a of addrs) {
    if (isPrivateAddress(a)) throw new MediaError('private_address', `${kind} URL host ${host} resolves to a private/local address (${a}); not allowed`);
  }
}

/** Loopback, private, link-local, CGNAT, unique-local, unspecified, multicast (v4 and v6, incl. v4-mapped). */
export function isPrivateAddress(addr: string): boolean {
  if (isIP(addr) === 4) {
    const [a, b] = addr.split('.').map(Number) as [number, number];
    return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31)
      || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || a >= 224;
  }
  const v6 = addr.toLowerCase();
  const mapped = /^(?:0*:)*:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(v6) ?? /^::(\d+\.\d+\.\d+\.\d+)$/.exec(v6);
  if (mapped) return isPrivateAddress(mapped[1]!);
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (hex) {
    const hi = parseInt(hex[1]!, 16), lo = parseInt(hex[2]!, 16);
    return isPrivateAddress(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`);
  }
  if (v6 === '::' || v6 === '::1') return true;
  const first = parseInt(v6.split(':')[0] || '0', 16);
  return (first & 0xfe00) === 0xfc00 /* fc00::/7 */ || (first & 0xffc0) === 0xfe80 /* fe80::/10 */
    || (first & 0xff00) === 0xff00 /* multicast */;
}
