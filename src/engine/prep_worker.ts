// Worker thread body for prep_pool.ts: prepares one prompt per message (its media, and its ids when asked, with
// the checkpoint's tokenizer loaded on first use) and moves the results (ids, crops, features) back uncopied.
import { parentPort, workerData } from 'node:worker_threads';
import { Phi4Tokenizer } from '../text/tokenizer.js';
import { prepareMedia, promptIds } from './prep.js';
import { transferables } from './request.js';
import type { PrepJob, PrepOut, PrepReply, PrepWorkerInit } from './prep_pool.js';

const init = workerData as PrepWorkerInit;
let tokenizer: Phi4Tokenizer | null = null;

parentPort!.on('message', (job: PrepJob) => {
  try {
    const prepared: PrepOut = prepareMedia(init.imageCfg, job.input);
    if (job.tokenize) prepared.ids = promptIds((tokenizer ??= Phi4Tokenizer.fromDir(init.dir)), job.input.promptText, prepared);
    const transfer = [...transferables(prepared.media)];
    if (prepared.ids?.buffer instanceof ArrayBuffer) transfer.push(prepared.ids.buffer);
    parentPort!.postMessage({ id: job.id, ok: true, prepared } satisfies PrepReply, transfer);
  } catch (e) {
    const err = e as Error;
    parentPort!.postMessage({ id: job.id, ok: false, error: { name: err?.name ?? 'Error', message: err?.message ?? String(e), ...(err?.stack ? { stack: err.stack } : {}) } } satisfies PrepReply);
  }
});
