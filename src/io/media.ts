// Resolve a media source (URL, path, data: URL, raw base64 or bytes) to its encoded bytes.
// Shared by the image and audio front ends; decoding happens elsewhere.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { existsSync, statSync } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { isPrivateAddress } from './addresses.js';

export { isPrivateAddress } from './addresses.js';
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
  /** How URL hosts are resolved and vetted (default: the system resolver and the IANA special-purpose lists). */
  network?: MediaNetwork;
}

/**
 * The resolver and the address filter of media fetches, replaceable in code only (tests, embedders with their own
 * DNS); no CLI flag or request field reaches it. Whatever `resolve` answers is vetted once and is exactly what
 * the socket connects to.
 */
export interface MediaNetwork {
  /** Every address of `hostname` (default: node:dns lookup, all addresses). */
  resolve?: (hostname: string, family: 0 | 4 | 6) => Promise<LookupAddress[]>;
  /** Whether an address must not be fetched from unless private media are allowed (default: isPrivateAddress). */
  isPrivate?: (address: string) => boolean;
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
  if (typeof allow === 'string') {
    // Sandboxed: a path outside the folder gets the same answer whether or not it exists (no probing the disk).
    const root = await realpath(resolve(allow)).catch(() => resolve(allow));
    const outside = (p: string) => { const rel = relative(root, p); return rel === '' || rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel); };
    const refuse = () => new MediaError('forbidden_path', `${kind} path ${path} is not an allowed local file (only existing files inside the allowed media folder can be used)`);
    if (outside(resolve(root, path))) throw refuse();
    try { real = await realpath(resolve(root, path)); } catch { throw new MediaError('not_found', `${kind} file not found in the allowed media folder: ${path}`); }
    if (outside(real)) throw refuse(); // a symlink leading out
  } else {
    try { real = await realpath(resolve(path)); } catch {
      throw new MediaError('not_found', `${kind} file not found: ${path} (give an existing path, a URL, a data: URL or base64)`);
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
  const pinPublic = !(opts.allowPrivateNetwork ?? true);
  let url = url0;
  try {
    for (let hop = 0; ; hop++) {
      let parsed: URL;
      try { parsed = new URL(url); } catch { throw new MediaError('bad_url', `invalid ${kind} URL: ${url}`); }
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
        throw new MediaError('bad_url', `${kind} URL redirected to unsupported scheme ${parsed.protocol}`);
      }
      const literal = parsed.hostname.replace(/^\[|\]$/g, '');
      if (pinPublic && isIP(literal) && (opts.network?.isPrivate ?? isPrivateAddress)(literal)) {
        throw new MediaError('private_address', `${kind} URL host ${literal} is a private/local address; not allowed`);
      }
      const res = await get(parsed, signal, pinPublic || opts.network?.resolve ? pinnedLookup(kind, pinPublic, opts.network) : undefined);
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (hop >= maxRedirects) throw new MediaError('too_many_redirects', `${kind} URL ${url0} redirected more than ${maxRedirects} times`);
        url = new URL(res.headers.location, parsed).toString();
        continue;
      }
      if (status < 200 || status >= 300) {
        res.resume();
        throw new MediaError('fetch_failed', `fetching ${kind} from ${url} failed: HTTP ${status} ${res.statusMessage ?? ''}`.trimEnd());
      }
      return await readBodyCapped(res, kind, url, maxBytes);
    }
  } catch (e) {
    if (e instanceof MediaError) throw e;
    if ((e as { cause?: unknown }).cause instanceof MediaError) throw (e as { cause: MediaError }).cause;
    if (timeout.aborted) throw new MediaError('timeout', `fetching ${kind} from ${url} timed out after ${timeoutMs} ms`, { cause: e });
    if (opts.signal?.aborted) throw new MediaError('fetch_failed', `fetching ${kind} from ${url} was aborted`, { cause: e });
    throw new MediaError('fetch_failed', `fetching ${kind} from ${url} failed: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * One GET on a fresh connection; `lookup` (when given) resolves and vets the address the socket then connects to.
 * No pooled socket: Node's global agent keys sockets by host and port only, so a keep-alive socket that a
 * permissive fetch opened to a private address would otherwise serve a later vetted fetch of the same name.
 */
function get(url: URL, signal: AbortSignal, lookup: LookupFunction | undefined): Promise<IncomingMessage> {
  return new Promise((ok, fail) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: 'GET', signal, agent: false, ...(lookup ? { lookup } : {}), headers: { 'user-agent': 'phi4mm' } }, ok);
    req.on('error', fail);
    req.end();
  });
}

/**
 * A DNS lookup for the connection itself: every resolved address is checked (when `vet`) and the socket connects
 * to exactly what was checked, so a rebinding DNS server cannot answer the check with a public address and the
 * connect with a private one: there is one resolution, not one per step.
 */
function pinnedLookup(kind: string, vet: boolean, network: MediaNetwork = {}): LookupFunction {
  const isPrivate = network.isPrivate ?? isPrivateAddress;
  return (hostname, options, callback) => {
    const family = options.family === 4 || options.family === 6 ? options.family : 0;
    const resolved = network.resolve ? network.resolve(hostname, family) : new Promise<LookupAddress[]>((ok, fail) => {
      dnsLookup(hostname, { ...options, all: true }, (err, addrs: LookupAddress[]) => (err ? fail(err) : ok(addrs)));
    });
    const deliver = (addrs: LookupAddress[]) => {
      if (!addrs.length) return callback(Object.assign(new Error(`${kind} URL host ${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
      const bad = vet ? addrs.find((a) => isPrivate(a.address)) : undefined;
      if (bad) {
        const e = new MediaError('private_address', `${kind} URL host ${hostname} resolves to a private/local address (${bad.address}); not allowed`);
        return callback(Object.assign(new Error(e.message), { cause: e, code: 'EPRIVATE' }) as NodeJS.ErrnoException, '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addrs);
      callback(null, addrs[0]!.address, addrs[0]!.family);
    };
    resolved.then(deliver, (err: NodeJS.ErrnoException) => callback(err, '', 0));
  };
}

async function readBodyCapped(res: IncomingMessage, kind: string, url: string, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(res.headers['content-length'] ?? NaN);
  if (declared > maxBytes) {
    res.destroy();
    throw new MediaError('too_large', `${kind} at ${url} is ${declared} bytes, more than the limit of ${maxBytes}`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of res) {
    total += (c as Buffer).length;
    if (total > maxBytes) {
      res.destroy();
      throw new MediaError('too_large', `${kind} at ${url} exceeds the limit of ${maxBytes} bytes`);
    }
    chunks.push(c as Buffer);
  }
  const out = Buffer.concat(chunks);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}
