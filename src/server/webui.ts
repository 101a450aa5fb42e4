// The chat page at GET / and its assets at GET /assets/<name>: web/index.html and web/style.css as shipped,
// plus the page's scripts compiled by `npm install` (prepare: tsc -p web/tsconfig.json → dist/web/). Open
// without the API key (the page holds no secrets; its API calls carry the key). Only files known at startup
// are served: a request path is looked up in a table, never joined onto a directory.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext, Route } from './server.js';

interface Asset { file: string; type: string }

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
};

// The page uses no inline script or style, talks only to its own origin, and shows media from data: URLs.
const CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:", "media-src 'self' data: blob:",
  "connect-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

/** The package root: the nearest folder above this file with web/index.html (src/server or dist/src/server). */
function packageRoot(): string | null {
  for (let d = import.meta.dirname; ; d = dirname(d)) {
    if (existsSync(join(d, 'web', 'index.html')) && existsSync(join(d, 'package.json'))) return d;
    if (dirname(d) === d) return null;
  }
}

function buildTable(): Map<string, Asset> | string {
  const root = packageRoot();
  if (!root) return 'the web UI files (web/index.html) are not in this installation';
  const built = join(root, 'dist', 'web');
  if (!existsSync(join(built, 'main.js'))) return `the web UI is not built (no ${join(built, 'main.js')}); run \`npm run build\``;
  const table = new Map<string, Asset>([
    ['/', { file: join(root, 'web', 'index.html'), type: TYPES['.html']! }],
    ['/assets/style.css', { file: join(root, 'web', 'style.css'), type: TYPES['.css']! }],
  ]);
  for (const name of readdirSync(built)) if (/^[a-z_]+\.js$/.test(name)) table.set(`/assets/${name}`, { file: join(built, name), type: TYPES['.js']! });
  return table;
}

let table: Map<string, Asset> | string | null = null;

/** GET (and HEAD) / and /assets/<name>, open without the API key. */
export function webUiRoutes(): Route[] {
  const handler = (c: RequestContext) => serveAsset(c.req, c.res, c.path);
  return [
    { method: 'GET', path: '/', auth: false, handler },
    { method: 'GET', path: /^\/assets\/[\w.-]+$/, auth: false, handler },
  ];
}

function serveAsset(req: IncomingMessage, res: ServerResponse, path: string): void {
  table ??= buildTable();
  const headers = { 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };
  if (typeof table === 'string') {
    res.writeHead(503, { ...headers, 'content-type': 'text/plain; charset=utf-8' });
    res.end(`phi4mm web UI unavailable: ${table}. The API (POST /v1/chat/completions) works without it.\n`);
    return;
  }
  const asset = table.get(path);
  if (!asset) {
    res.writeHead(404, { ...headers, 'content-type': 'text/plain; charset=utf-8' });
    res.end(`no web UI asset ${path}\n`);
    return;
  }
  // Read per request (a few KB): a rebuilt page shows on reload without restarting the server.
  let body: Buffer;
  try {
    body = readFileSync(asset.file);
  } catch (e) {
    res.writeHead(500, { ...headers, 'content-type': 'text/plain; charset=utf-8' });
    res.end(`cannot read ${path}: ${(e as Error).message}\n`);
    return;
  }
  res.writeHead(200, { ...headers, 'content-type': asset.type, 'content-length': body.length, 'content-security-policy': CSP });
  res.end(req.method === 'HEAD' ? undefined : body);
}
