// Timing of one streamed chat as a client sees it, shared by the benchmarks that measure decode through chat().
import type { ChatEvent } from '../src/api/types.js';

/** When the first text delta and the end arrived (performance.now() ms), and the completion tokens from usage. */
export async function timeStream(events: AsyncIterable<ChatEvent>): Promise<{ first: number; end: number; tokens: number }> {
  let first = 0, end = 0, tokens = 0;
  for await (const ev of events) {
    if (ev.type === 'delta' && !first) first = performance.now();
    if (ev.type === 'done') { end = performance.now(); tokens = ev.usage.completion_tokens; }
  }
  return { first: first || end, end, tokens };
}
