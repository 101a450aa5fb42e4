// Builds the native addon with node-gyp against the locally installed Node headers, so nothing is downloaded.
// A failed build is not fatal: the runtime falls back to the pure-TS reference backend with one warning.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const nodeDir = process.env.PHI4MM_NODEDIR ?? dirname(dirname(process.execPath));
const root = dirname(dirname(new URL(import.meta.url).pathname));
if (!existsSync(join(root, 'native', 'binding.gyp'))) process.exit(0);
let gyp;
try { gyp = require.resolve('node-gyp/bin/node-gyp.js'); } catch { gyp = null; }
const args = gyp ? [gyp, 'rebuild', `--nodedir=${nodeDir}`, '-j', 'max'] : null;
if (!args) { console.warn('[phi4mm] node-gyp not found; native addon not built (reference backend will be used)'); process.exit(0); }
const r = spawnSync(process.execPath, args, { cwd: join(root, 'native'), stdio: 'inherit' });
if (r.status !== 0) console.warn(`[phi4mm] native addon build failed (exit ${r.status}); the pure-TS reference backend will be used`);
