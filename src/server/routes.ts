// The OpenAI routes beyond the server core, dispatched from ChatServer.route with one call.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, json } from './server.js';
import type { RouteContext } from './common.js';
import { handleChat } from './chat.js';
import { handleCompletions } from './completions.js';
import { handleTranscriptions, handleTranslations } from './audio.js';
import { handleResponses } from './responses.js';

export type { RouteContext, OpenAIRouteOptions } from './common.js';

type Handler = (ctx: RouteContext, req: IncomingMessage, res: ServerResponse) => Promise<void>;

// Looked up at call time, not built at load: these modules import server.ts, which imports this one.
function postRoute(path: string): Handler | undefined {
  switch (path) {
    case '/v1/chat/completions': return handleChat;
    case '/v1/completions': return handleCompletions;
    case '/v1/audio/transcriptions': return handleTranscriptions;
    case '/v1/audio/translations': return handleTranslations;
    case '/v1/responses': return handleResponses;
    default: return undefined;
  }
}

export const ROUTE_LIST = ['/v1/chat/completions', '/v1/completions', '/v1/audio/transcriptions', '/v1/audio/translations', '/v1/responses']
  .map((p) => `POST ${p}`).concat(['GET /v1/models/{id}', 'GET /metrics']).join(', ');

/** Handles the request if it is one of these routes (true), else leaves it to the caller (false). */
export async function handleRoute(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
  const post = postRoute(path);
  if (post) {
    if (req.method !== 'POST') throw new HttpError(405, 'invalid_request_error', `use POST for ${path}`);
    await post(ctx, req, res);
    return true;
  }
  if (path === '/metrics' && req.method === 'GET') {
    await ctx.metrics.serve(res);
    return true;
  }
  if (path.startsWith('/v1/models/') && req.method === 'GET') {
    const id = decodeURIComponent(path.slice('/v1/models/'.length));
    if (id !== ctx.engine.modelId) throw new HttpError(404, 'invalid_request_error', `The model '${id}' does not exist; this server serves '${ctx.engine.modelId}'`, 'model', 'model_not_found');
    json(res, 200, { id, object: 'model', created: 0, owned_by: 'phi4mm' });
    return true;
  }
  return false;
}
