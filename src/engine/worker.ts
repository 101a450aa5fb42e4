// The engine worker: loads the model, owns it and runs the scheduler loop; the main thread talks to it with
// small messages (see loop.ts). Started by host.ts workerEngine().
import { parentPort, workerData } from 'node:worker_threads';
import { describeLoaded, loadModelFolder } from '../api/load.js';
import { EngineLoop, type ToEngine } from './loop.js';
import { DeviceBatchModel } from './device_model.js';
import { resolveSettings } from './settings.js';
import { Phi4Tokenizer } from '../text/tokenizer.js';
import type { SaveReply, SaveRequest, WorkerInit, WorkerReady } from './host.js';
import { saveLoadedModel } from '../api/save.js';

const port = parentPort!;
const init = workerData as WorkerInit;

try {
  const loaded = await loadModelFolder(init.dir, { ...init.load, onProgress: (p) => port.postMessage({ type: 'progress', progress: p }) });
  let tokenizer: Phi4Tokenizer | null = null;
  const model = new DeviceBatchModel(loaded.model, loaded.backend, init.engine.kvDtype, () => (tokenizer ??= Phi4Tokenizer.fromDir(init.dir)));
  const { settings, note } = resolveSettings(init.engine, model.kvBytesPerToken, model.maxPositions, loaded.report.deferred.bytes);
  const loop = new EngineLoop(model, settings, (m) => port.postMessage(m));
  port.on('message', (m: ToEngine | SaveRequest) => {
    if (m.type !== 'save') return loop.handle(m);
    // Saving writes the copy this thread holds; the scheduler waits meanwhile (one write of the model).
    let reply: SaveReply = { type: 'saved', id: m.id };
    try {
      saveLoadedModel(loaded, init.dir, m.outDir);
    } catch (e) {
      const err = e as Error;
      reply = { ...reply, error: { name: err.name, message: err.message } };
    }
    port.postMessage(reply);
  });
  const ready: WorkerReady = {
    type: 'ready', settings, kvBytesPerToken: model.kvBytesPerToken, kvNote: note, report: loaded.report,
    describe: describeLoaded(loaded),
  };
  port.postMessage(ready);
} catch (e) {
  const err = e as Error;
  port.postMessage({ type: 'load-error', error: { name: err.name, message: err.message } });
}
