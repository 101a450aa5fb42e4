// Request-side checks for constrained decoding (structured outputs, forced tool calls): refuse with a 400 what
// the build cannot honour, before any work is queued.
import type { ConstraintSpec } from '../text/sampler.js';
import { HttpError } from './server.js';
import type { RouteContext } from './common.js';

export function checkConstraint(ctx: RouteContext, c: ConstraintSpec, param: string): void {
  if (!ctx.engine.constrainedDecoding) {
    throw new HttpError(400, 'invalid_request_error', `${param}: ${c.kind === 'tool_call' ? 'a forced tool call' : `response_format ${c.kind}`} needs grammar-constrained decoding, which this model engine does not offer`, param, 'unsupported_value');
  }
}
