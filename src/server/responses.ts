// POST /v1/responses: the Responses API over the same engine as chat — text, image and audio input, function
// tools (calls come back as function_call items), text.format structured outputs, and the typed SSE events
// (response.created … response.output_text.delta … response.completed).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { ChatMessage, ContentPart, SamplingOptions, Usage } from '../api/types.js';
import { ToolCallStreamParser, type ToolCall } from '../text/tool_calls.js';
import { HttpError, sendJson as json, toEnvelope } from './http.js';
import { parseRequest, requestController, toSampling, type RouteContext } from './common.js';
import { compileConstraint } from './constraints.js';
import { DEFAULT_TOOL_SYSTEM, renderAssistantCalls, renderTools, toolPlan } from './tools.js';
import { RESPONSES_UNSUPPORTED, responsesRequestSchema, type ResponsesRequest } from './responses_schema.js';
import type { FunctionTool, ResponseFormat, ToolChoice } from './schema.js';

const PATH = '/v1/responses';
const rid = (prefix: string) => `${prefix}_${randomBytes(16).toString('hex')}`;

export async function handleResponses(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await ctx.readJson(req);
  const bad = body && typeof body === 'object' ? Object.entries(RESPONSES_UNSUPPORTED).filter(([k, f]) => k in body && f((body as Record<string, unknown>)[k])).map(([k]) => k) : [];
  if (bad.length) throw new HttpError(400, 'invalid_request_error', `${bad.join(', ')}: not supported by this server (it keeps no conversation state and runs no hosted tools)`, bad[0]!, 'unsupported_parameter');
  const r = parseRequest(responsesRequestSchema, body);
  const tools: FunctionTool[] = (r.tools ?? []).map((t) => ({ type: 'function', function: { name: t.name, ...(t.description != null ? { description: t.description } : {}), ...(t.parameters != null ? { parameters: t.parameters } : {}) } }));
  const choice: ToolChoice | undefined = r.tool_choice == null ? undefined : typeof r.tool_choice === 'string' ? r.tool_choice : { type: 'function', function: { name: r.tool_choice.name } };
  if (choice && choice !== 'none' && !tools.length) throw new HttpError(400, 'invalid_request_error', 'tool_choice needs a non-empty tools list', 'tool_choice', 'invalid_value');
  if (typeof choice === 'object' && !tools.some((t) => t.function.name === choice.function.name)) throw new HttpError(400, 'invalid_request_error', `tool_choice names ${choice.function.name}, which is not in tools`, 'tool_choice', 'invalid_value');
  const f = r.text?.format;
  const format: ResponseFormat | undefined = !f ? undefined : f.type === 'json_schema' ? { type: 'json_schema', json_schema: { name: f.name, schema: f.schema, ...(f.strict != null ? { strict: f.strict } : {}) } } : f;
  const plan = toolPlan(tools, choice, r.parallel_tool_calls);
  const grammar = compileConstraint(ctx, { tools, tool_choice: choice, parallel_tool_calls: r.parallel_tool_calls, response_format: format }, { tools: 'tool_choice', format: 'text.format' });
  const ctrl = requestController(res);
  const messages = await toMessages(ctx, r, tools, ctrl.signal);
  const opts: SamplingOptions = toSampling({ max_tokens: r.max_output_tokens, temperature: r.temperature, top_p: r.top_p }, ctrl.signal, ctx.engine);
  if (plan.suppressIds.length) opts.suppressIds = plan.suppressIds;
  if (grammar) opts.constraint = grammar;
  const id = rid('resp');
  if (r.user != null || r.metadata != null) ctx.log(`${id}: user=${JSON.stringify(r.user ?? null)} metadata=${JSON.stringify(r.metadata ?? null)}`);
  const created = Math.floor(Date.now() / 1000);
  const envelope = (status: string, output: unknown[], usage: Usage | null, incomplete: string | null) => ({
    id, object: 'response', created_at: created, status, error: null, incomplete_details: incomplete ? { reason: incomplete } : null,
    instructions: r.instructions ?? null, max_output_tokens: r.max_output_tokens ?? null, model: ctx.engine.modelId, output,
    parallel_tool_calls: r.parallel_tool_calls ?? true, previous_response_id: null, reasoning: { effort: null, summary: null }, store: false,
    temperature: r.temperature ?? null, text: { format: f ?? { type: 'text' } }, tool_choice: r.tool_choice ?? 'auto',
    tools: (r.tools ?? []).map((t) => ({ ...t, strict: t.strict ?? true })), top_p: r.top_p ?? null, truncation: 'disabled', user: r.user ?? null, metadata: r.metadata ?? {},
    usage: usage ? { input_tokens: usage.prompt_tokens, input_tokens_details: { cached_tokens: 0 }, output_tokens: usage.completion_tokens, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: usage.total_tokens } : null,
  });

  await ctx.admit(ctrl, async () => {
    const firstToken = ctx.metrics.firstTokenTimer(PATH);
    const sse = r.stream ? new TypedSse(res, ctrl.signal) : null;
    const output: Array<Record<string, unknown>> = [];
    const parser = plan.parse ? new ToolCallStreamParser() : null;
    let msg: { id: string; index: number; text: string } | null = null;
    const openMessage = () => {
      if (msg) return msg;
      msg = { id: rid('msg'), index: output.length, text: '' };
      output.push({ type: 'message', id: msg.id, status: 'in_progress', role: 'assistant', content: [] });
      sse?.send('response.output_item.added', { output_index: msg.index, item: output[msg.index] });
      sse?.send('response.content_part.added', { item_id: msg.id, output_index: msg.index, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
      return msg;
    };
    const closeMessage = () => {
      if (!msg) return;
      const part = { type: 'output_text', text: msg.text, annotations: [], logprobs: [] };
      sse?.send('response.output_text.done', { item_id: msg.id, output_index: msg.index, content_index: 0, text: msg.text, logprobs: [] });
      sse?.send('response.content_part.done', { item_id: msg.id, output_index: msg.index, content_index: 0, part });
      output[msg.index] = { type: 'message', id: msg.id, status: 'completed', role: 'assistant', content: [part] };
      sse?.send('response.output_item.done', { output_index: msg.index, item: output[msg.index] });
    };
    const text = (t: string) => {
      if (!t) return;
      const m = openMessage();
      m.text += t;
      sse?.send('response.output_text.delta', { item_id: m.id, output_index: m.index, content_index: 0, delta: t, logprobs: [] });
    };
    const call = (c: ToolCall, index: number) => {
      if (!plan.parallel && index > 0) return;
      closeMessage();
      msg = null;
      const item = { type: 'function_call', id: rid('fc'), call_id: c.id, name: c.function.name, arguments: c.function.arguments, status: 'completed' };
      const at = output.length;
      output.push(item);
      sse?.send('response.output_item.added', { output_index: at, item: { ...item, arguments: '', status: 'in_progress' } });
      sse?.send('response.function_call_arguments.delta', { item_id: item.id, output_index: at, delta: item.arguments });
      sse?.send('response.function_call_arguments.done', { item_id: item.id, output_index: at, arguments: item.arguments });
      sse?.send('response.output_item.done', { output_index: at, item });
    };
    const feed = (events: ReturnType<ToolCallStreamParser['push']>) => { for (const e of events) if (e.type === 'content') text(e.text); else call(e.delta, e.delta.index); };
    sse?.send('response.created', { response: envelope('in_progress', [], null, null) });
    sse?.send('response.in_progress', { response: envelope('in_progress', [], null, null) });
    let usage: Usage | null = null, finish = 'stop';
    try {
      for await (const ev of ctx.engine.streamEvents(messages, opts)) {
        if (ev.type === 'delta') { firstToken(); feed(parser ? parser.push(ev.text) : [{ type: 'content', text: ev.text }]); continue; }
        finish = ev.finishReason; usage = ev.usage;
      }
      if (finish === 'cancelled') return;
      if (parser) feed(parser.end());
      if (!output.length) openMessage(); // an empty answer is still one (empty) message
      closeMessage();
      if (usage) ctx.metrics.countTokens(PATH, usage.prompt_tokens, usage.completion_tokens);
      const incomplete = finish === 'length' ? 'max_output_tokens' : null;
      const final = envelope(incomplete ? 'incomplete' : 'completed', output, usage, incomplete);
      if (sse) sse.send(incomplete ? 'response.incomplete' : 'response.completed', { response: final });
      else json(res, 200, final);
    } catch (e) {
      if (!sse) throw e;
      sse.send('error', { ...toEnvelope(e).error });
    }
    sse?.end();
  });
}

/** Typed SSE events (`event: <type>`), each with its type and a sequence number, as the Responses API streams. */
class TypedSse {
  private seq = 0;
  constructor(private readonly res: ServerResponse, private readonly signal: AbortSignal) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  }
  send(type: string, body: object): void {
    if (!this.signal.aborted) this.res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.seq++, ...body })}\n\n`);
  }
  end(): void {
    if (!this.signal.aborted) this.res.end();
  }
}

async function toMessages(ctx: RouteContext, r: ResponsesRequest, tools: FunctionTool[], signal: AbortSignal): Promise<ChatMessage[]> {
  const out: ChatMessage[] = [];
  if (r.instructions) out.push({ role: 'system', content: r.instructions });
  const items = typeof r.input === 'string' ? [{ role: 'user' as const, content: r.input }] : r.input;
  for (const [i, it] of items.entries()) {
    const param = `input.${i}`;
    if ('type' in it && it.type === 'function_call') {
      out.push({ role: 'assistant', content: renderAssistantCalls('', [{ function: { name: it.name, arguments: it.arguments } }], param) });
      continue;
    }
    if ('type' in it && it.type === 'function_call_output') {
      out.push({ role: 'tool', content: typeof it.output === 'string' ? it.output : it.output.map((p) => p.text).join('') });
      continue;
    }
    const m = it as Extract<typeof it, { role: string }>;
    const role = m.role === 'developer' ? 'system' : m.role;
    if (typeof m.content === 'string') { out.push({ role, content: m.content }); continue; }
    const parts: ContentPart[] = [];
    for (const [j, p] of m.content.entries()) {
      const pp = `${param}.content.${j}`;
      switch (p.type) {
        case 'input_text': case 'output_text': parts.push({ type: 'text', text: p.text }); break;
        case 'refusal': parts.push({ type: 'text', text: p.refusal }); break;
        case 'input_image':
          if (!p.image_url) throw new HttpError(400, 'invalid_request_error', `${pp}: send the image as image_url (a data: or http(s) URL); file_id needs a files API this server does not have`, pp, 'unsupported_value');
          parts.push(await ctx.resolvePart({ type: 'image_url', image_url: p.image_url }, pp, signal));
          break;
        case 'input_audio': parts.push(await ctx.resolvePart({ type: 'input_audio', input_audio: p.input_audio }, pp, signal)); break;
        case 'input_file': throw new HttpError(400, 'invalid_request_error', `${pp}: input_file is not supported; send images as input_image and audio as input_audio`, pp, 'unsupported_value');
      }
    }
    if (role !== 'user' && parts.some((p) => p.type !== 'text')) throw new HttpError(400, 'invalid_request_error', `${param}: only user messages can carry images or audio`, param, 'invalid_value');
    out.push({ role, content: role === 'user' ? parts : parts.map((p) => (p.type === 'text' ? p.text : '')).join('') });
  }
  if (tools.length) {
    const sys = out.find((m) => m.role === 'system');
    if (sys) sys.tools = renderTools(tools);
    else out.unshift({ role: 'system', content: DEFAULT_TOOL_SYSTEM, tools: renderTools(tools) });
  }
  return out;
}
