// The OpenAI routes beyond chat, as route-table entries: each handler gets the openai RouteContext (common.ts)
// built from the server's RequestContext (engine, body limits, media policy, admission, metrics).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ContentPart } from '../api/types.js';
import { loadMediaBytes, MediaError, type MediaFetchOptions } from '../io/media.js';
import { HttpError, readJson, sendJson } from './http.js';
import type { RouteContext } from './common.js';
import type { ContentPartIn } from './schema.js';
import type { RequestContext, Route } from './server.js';
import { handleCompletions } from './completions.js';
import { handleTranscriptions, handleTranslations } from './audio.js';
import { handleResponses } from './responses.js';

export type { RouteContext, OpenAIRouteOptions } from './common.js';

type Handler = (ctx: RouteContext, req: IncomingMessage, res: ServerResponse) => Promise<void>;

export function openaiRoutes(): Route[] {
  const post = (path: string, h: Handler, contentTypes?: string[]): Route => ({ method: 'POST', path, handler: (c) => h(routeContext(c), c.req, c.res), ...(contentTypes ? { contentTypes } : {}) });
  return [
    post('/v1/completions', handleCompletions),
    post('/v1/audio/transcriptions', handleTranscriptions, ['multipart/form-data']),
    post('/v1/audio/translations', handleTranslations, ['multipart/form-data']),
    post('/v1/responses', handleResponses),
    { method: 'GET', path: '/metrics', handler: (c) => c.server.metrics.serve(c.res) },
    {
      method: 'GET', path: /^\/v1\/models\/(.+)$/,
      handler: (c) => {
        let id: string;
        try { id = decodeURIComponent(c.params[0]!); } catch { throw new HttpError(400, 'invalid_request_error', 'the model id in the path is not valid percent-encoding', 'model', 'invalid_value'); }
        sendJson(c.res, 200, { id: c.server.checkModel(id), object: 'model', created: 0, owned_by: 'phi4mm' });
      },
    },
  ];
}

/** What the openai handlers need, from one request's context on the route-table server. */
export function routeContext(c: RequestContext): RouteContext {
  const { server } = c;
  const engine = server.engine; // 503 while the model loads
  const limits = server.limits;
  return {
    engine,
    opts: server.opts.openai ?? {},
    metrics: server.metrics,
    log: (line) => server.opts.log?.(line),
    readJson: (req) => readJson(req, limits.maxBodyBytes, c.signal),
    maxBodyBytes: limits.maxBodyBytes,
    resolvePart: (p, param, signal) => resolvePart(p, param, mediaOptions(c, signal)),
    admit: async (ctrl, fn) => {
      // The server's admission: the engine's own (requests run together, 429 when full) or the one-at-a-time queue.
      const ticket = server.admission.admit(0);
      try {
        await ticket.turn(AbortSignal.any([ctrl.signal, c.signal]));
        return await fn();
      } finally {
        ticket.release();
      }
    },
  };
}

function mediaOptions(c: RequestContext, signal: AbortSignal): MediaFetchOptions {
  const o = c.server.opts;
  return {
    timeoutMs: o.mediaTimeoutMs ?? 20_000, maxBytes: c.server.limits.maxMediaBytes, maxRedirects: o.maxRedirects ?? 3,
    allowPrivateNetwork: o.allowPrivateMedia ?? false, allowLocalFiles: o.allowLocalMedia ?? false, signal,
    ...(o.mediaNetwork ? { network: o.mediaNetwork } : {}),
  };
}

/** A media fetch/decode failure as the client sees it: 413 when too large, else 400 with the media error's code. */
export function mediaHttpError(e: unknown, param: string): unknown {
  return e instanceof MediaError ? new HttpError(e.code === 'too_large' ? 413 : 400, 'invalid_request_error', `${param}: ${e.message}`, param, e.code) : e;
}

async function resolvePart(p: ContentPartIn, param: string, opts: MediaFetchOptions): Promise<ContentPart> {
  const fetchBytes = async (src: string | Uint8Array, kind: 'image' | 'audio') => {
    try {
      return await loadMediaBytes(src, kind, opts);
    } catch (e) {
      throw mediaHttpError(e, param);
    }
  };
  switch (p.type) {
    case 'text': return { type: 'text', text: p.text };
    case 'image_url': return { type: 'image', image: await fetchBytes(typeof p.image_url === 'string' ? p.image_url : p.image_url.url, 'image') };
    case 'audio_url': return { type: 'audio', audio: await fetchBytes(typeof p.audio_url === 'string' ? p.audio_url : p.audio_url.url, 'audio') };
    case 'input_audio': {
      if (!/^[A-Za-z0-9+/=\s_-]+$/.test(p.input_audio.data)) throw new HttpError(400, 'invalid_request_error', `${param}.input_audio.data: not base64`, `${param}.input_audio.data`, 'bad_base64');
      return { type: 'audio', audio: new Uint8Array(Buffer.from(p.input_audio.data, 'base64')) };
    }
  }
}
