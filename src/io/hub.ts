// Hugging Face Hub download into the standard cache layout (the one huggingface_hub and transformers share):
//   $HF_HUB_CACHE/models--org--name/{blobs/<etag>, snapshots/<commit>/<path> -> ../../blobs/<etag>, refs/<rev>}
// @huggingface/hub supplies the cache location and the file listing; the transfer itself is ours because it
// must resume partial downloads (HTTP Range on `<blob>.incomplete`) and report progress, which its
// downloadFileToCacheDir does not.
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { getHFHubCachePath, listFiles } from '@huggingface/hub';

export interface HubProgress {
  file: string;
  /** Bytes of this file present locally (including a resumed prefix). */
  loaded: number;
  total: number;
  /** Bytes of all selected files present locally, and their total. */
  overallLoaded: number;
  overallTotal: number;
}

export interface HubDownloadOptions {
  revision?: string;
  /** Default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Default: $HF_TOKEN. */
  token?: string;
  /** Default: $HF_ENDPOINT or https://huggingface.co. */
  hubUrl?: string;
  /** Which repository files to fetch (default: everything). */
  filter?: (path: string) => boolean;
  onProgress?: (p: HubProgress) => void;
  /** Use only what is cached (also $HF_HUB_OFFLINE=1). */
  offline?: boolean;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

export class HubError extends Error {
  override name = 'HubError';
}

const COMMIT_RE = /^[0-9a-f]{40}$/;

export function hubCacheDir(): string {
  return getHFHubCachePath();
}

export function repoCacheDir(repo: string, cacheDir = hubCacheDir()): string {
  return join(cacheDir, `models--${repo.split('/').join('--')}`);
}

/**
 * Download a snapshot of `repo` (files passing `filter`) into the cache and return the snapshot folder.
 * Cached files are reused without touching the network when the revision is already resolved locally.
 */
export async function snapshotDownload(repo: string, opts: HubDownloadOptions = {}): Promise<string> {
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(repo)) throw new HubError(`"${repo}" is not a hub repository id (expected "org/name") nor an existing local folder`);
  const revision = opts.revision ?? 'main';
  const storage = repoCacheDir(repo, opts.cacheDir ?? hubCacheDir());
  const offline = opts.offline ?? ['1', 'true', 'yes'].includes((process.env['HF_HUB_OFFLINE'] ?? '').toLowerCase());
  const hubUrl = (opts.hubUrl ?? process.env['HF_ENDPOINT'] ?? 'https://huggingface.co').replace(/\/$/, '');
  const token = opts.token ?? process.env['HF_TOKEN'];
  const doFetch = opts.fetch ?? fetch;
  const filter = opts.filter ?? (() => true);

  const cachedCommit = COMMIT_RE.test(revision) ? revision : readRef(storage, revision);
  if (offline) {
    if (!cachedCommit || !existsSync(join(storage, 'snapshots', cachedCommit))) {
      throw new HubError(`offline mode: ${repo}@${revision} is not in the cache ${storage}; run once online or pass a local folder`);
    }
    return join(storage, 'snapshots', cachedCommit);
  }

  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  let entries: Array<{ path: string; size: number }>;
  try {
    entries = [];
    for await (const e of listFiles({ repo, revision, recursive: true, hubUrl, fetch: doFetch, ...(token ? { accessToken: token } : {}) })) {
      if (e.type === 'file' && filter(e.path)) entries.push({ path: e.path, size: e.lfs?.size ?? e.size });
    }
  } catch (e) {
    const msg = (e as Error).message;
    if (cachedCommit && existsSync(join(storage, 'snapshots', cachedCommit))) {
      process.emitWarning(`phi4mm: could not reach the hub (${msg}); using the cached snapshot ${cachedCommit}`);
      return join(storage, 'snapshots', cachedCommit);
    }
    throw new HubError(`cannot list ${repo}@${revision} on ${hubUrl}: ${msg}${token ? '' : ' (set HF_TOKEN if the repository is gated)'}`);
  }
  if (entries.length === 0) throw new HubError(`${repo}@${revision} has no files matching the selection`);

  const overallTotal = entries.reduce((a, e) => a + e.size, 0);
  let overallDone = 0;
  let commit: string | null = null;
  for (const e of entries) {
    const r = await downloadOne(storage, repo, revision, e.path, hubUrl, headers, doFetch, opts.signal, (loaded, total) =>
      opts.onProgress?.({ file: e.path, loaded, total, overallLoaded: overallDone + loaded, overallTotal }),
    );
    overallDone += r.size;
    commit ??= r.commit;
    if (r.commit !== commit) throw new HubError(`${repo}@${revision} moved to another commit during the download (${commit} → ${r.commit}); retry`);
  }
  if (!COMMIT_RE.test(revision)) {
    mkdirSync(join(storage, 'refs'), { recursive: true });
    writeFileSync(join(storage, 'refs', revision), commit!);
  }
  return join(storage, 'snapshots', commit!);
}

function readRef(storage: string, revision: string): string | null {
  const p = join(storage, 'refs', revision);
  return existsSync(p) ? readFileSync(p, 'utf8').trim() : null;
}

async function downloadOne(storage: string, repo: string, revision: string, path: string, hubUrl: string, headers: Record<string, string>, doFetch: typeof fetch, signal: AbortSignal | undefined, progress: (loaded: number, total: number) => void): Promise<{ commit: string; size: number }> {
  const url = `${hubUrl}/${repo}/resolve/${encodeURIComponent(revision)}/${path.split('/').map(encodeURIComponent).join('/')}`;
  // HEAD without following redirects: the resolve endpoint answers with the commit and ETag itself
  // (LFS files redirect to a CDN whose ETag is not the blob id, hence X-Linked-Etag first).
  const head = await doFetch(url, { method: 'HEAD', headers: { ...headers, 'accept-encoding': 'identity' }, redirect: 'manual', ...(signal ? { signal } : {}) });
  if (head.status === 401 || head.status === 403) throw new HubError(`${repo}/${path}: access denied (HTTP ${head.status}); set HF_TOKEN to a token with access to this repository`);
  if (head.status === 404) throw new HubError(`${repo}/${path}: not found at revision ${revision} (HTTP 404)`);
  if (head.status >= 400) throw new HubError(`${repo}/${path}: HTTP ${head.status} from ${url}`);
  const commit = head.headers.get('x-repo-commit');
  const etagRaw = head.headers.get('x-linked-etag') ?? head.headers.get('etag');
  if (!commit || !etagRaw) throw new HubError(`${url}: the server did not send X-Repo-Commit/ETag headers; is ${hubUrl} a Hugging Face hub?`);
  const etag = etagRaw.replace(/^W\//, '').replace(/"/g, '');
  const size = Number(head.headers.get('x-linked-size') ?? head.headers.get('content-length') ?? NaN);
  const pointer = join(storage, 'snapshots', commit, path);
  const blob = join(storage, 'blobs', etag);
  if (existsSync(pointer) && existsSync(blob)) {
    progress(statSync(blob).size, statSync(blob).size);
    return { commit, size: statSync(blob).size };
  }
  mkdirSync(dirname(blob), { recursive: true });
  if (!existsSync(blob)) await fetchResumable(url, blob, size, headers, doFetch, signal, progress);
  mkdirSync(dirname(pointer), { recursive: true });
  if (existsSync(pointer)) unlinkSync(pointer);
  symlinkSync(relative(dirname(pointer), blob), pointer);
  return { commit, size: statSync(blob).size };
}

async function fetchResumable(url: string, blob: string, size: number, headers: Record<string, string>, doFetch: typeof fetch, signal: AbortSignal | undefined, progress: (loaded: number, total: number) => void): Promise<void> {
  const partial = `${blob}.incomplete`;
  let have = existsSync(partial) ? statSync(partial).size : 0;
  if (Number.isFinite(size) && have > size) {
    unlinkSync(partial);
    have = 0;
  }
  const res = await doFetch(url, { headers: { ...headers, ...(have > 0 ? { range: `bytes=${have}-` } : {}) }, redirect: 'follow', ...(signal ? { signal } : {}) });
  if (res.status === 416 && have === size) {
    renameSync(partial, blob);
    return;
  }
  if (!res.ok || !res.body) throw new HubError(`download of ${url} failed: HTTP ${res.status}`);
  // 206 = the server honoured the range; a plain 200 restarts from byte 0.
  const append = res.status === 206 && have > 0;
  if (!append) have = 0;
  const total = Number.isFinite(size) ? size : Number(res.headers.get('content-length') ?? 0) + have;
  let loaded = have;
  progress(loaded, total);
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  body.on('data', (c: Buffer) => {
    loaded += c.length;
    progress(loaded, total);
  });
  await pipeline(body, createWriteStream(partial, { flags: append ? 'a' : 'w' }));
  const got = statSync(partial).size;
  if (Number.isFinite(size) && got !== size) throw new HubError(`download of ${url} ended at ${got} of ${size} bytes; run again to resume`);
  renameSync(partial, blob);
}
