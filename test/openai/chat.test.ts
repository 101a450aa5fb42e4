// /v1/chat/completions with the official openai client: logprobs, logit_bias, n, tools (auto / none / required /
// named, streamed and not), structured outputs, and the accepted-or-refused OpenAI fields. Weights are random:
// the assertions are about structure and constraints, never wording.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import type OpenAI from 'openai';
import { startServer, utf8, type Running } from './helpers.js';

let s: Running;
beforeAll(async () => { s = await startServer({ maxQueue: 8 }); }, 120_000);
afterAll(async () => { await s?.close(); });

const user = (content: string): OpenAI.ChatCompletionMessageParam[] => [{ role: 'user', content }];
const weather: OpenAI.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather', description: 'Weather forecast for a city',
    parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Oslo'] }, days: { type: 'integer', minimum: 1, maximum: 7 } }, required: ['city', 'days'], additionalProperties: false },
  },
};
const clock: OpenAI.ChatCompletionTool = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { utc: { type: 'boolean' } }, required: ['utc'], additionalProperties: false } } };
const ajv = new Ajv();
const raw = (body: unknown) => fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('chat completions: logprobs, logit_bias, n', () => {
  it('logprobs match the returned tokens (bytes spell the content; greedy picks the top alternative)', async () => {
    const r = await s.client.chat.completions.create({ model: 'm', messages: user('Hi'), max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3 });
    const c = r.choices[0]!;
    const lp = c.logprobs!.content!;
    expect(utf8(lp.map((t) => t.bytes!))).toBe(c.message.content);
    expect(lp.length).toBe(r.usage!.completion_tokens - (c.finish_reason === 'stop' ? 1 : 0)); // eos is not output
    for (const t of lp) {
      expect(t.top_logprobs).toHaveLength(3);
      expect(t.top_logprobs[0]!.token).toBe(t.token); // greedy: the chosen token is the most likely one
      expect(t.logprob).toBeCloseTo(t.top_logprobs[0]!.logprob, 12);
      expect(t.logprob).toBeLessThanOrEqual(0);
      for (let k = 1; k < 3; k++) expect(t.top_logprobs[k]!.logprob).toBeLessThanOrEqual(t.top_logprobs[k - 1]!.logprob);
    }
    // Streamed: the same tokens, in pieces.
    const st = await s.client.chat.completions.create({ model: 'm', messages: user('Hi'), max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3, stream: true });
    const got: OpenAI.ChatCompletionTokenLogprob[] = [];
    for await (const ch of st) got.push(...(ch.choices[0]?.logprobs?.content ?? []));
    expect(got.map((t) => t.token)).toEqual(lp.map((t) => t.token));
    expect(got.map((t) => t.logprob)).toEqual(lp.map((t) => t.logprob));
  });

  it('logit_bias +100 forces a token; -100 removes the greedy one', async () => {
    const id = s.model.tokenizer.encode(' cat')[0]!;
    const r = await s.client.chat.completions.create({ model: 'm', messages: user('Hi'), max_tokens: 4, temperature: 0, logit_bias: { [id]: 100 } });
    expect(r.choices[0]!.message.content).toBe(' cat'.repeat(4));
    const plain = await s.client.chat.completions.create({ model: 'm', messages: user('Hi'), max_tokens: 1, temperature: 0, logprobs: true });
    const first = plain.choices[0]!.logprobs!.content![0]!.token;
    const firstId = s.model.tokenizer.encode(first)[0]!;
    const banned = await s.client.chat.completions.create({ model: 'm', messages: user('Hi'), max_tokens: 1, temperature: 0, logit_bias: { [firstId]: -100 }, logprobs: true });
    expect(banned.choices[0]!.logprobs!.content![0]!.token).not.toBe(first);
    const bad = await raw({ model: 'm', messages: user('x'), logit_bias: { '999999999': 5 } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/vocabulary/);
  });

  it('n = 3 gives three seeded choices (seed + i each), streamed by index and equal to the plain ones', async () => {
    const req = { model: 'm', messages: user('Tell me'), max_tokens: 6, temperature: 1, seed: 42, n: 3 };
    const r = await s.client.chat.completions.create(req);
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    const texts = r.choices.map((c) => c.message.content);
    expect(new Set(texts).size).toBeGreaterThan(1); // distinct seeds, temperature 1
    // choice i uses seed 42 + i: choice 1 equals choice 0 of a request seeded 43
    const one = await s.client.chat.completions.create({ ...req, n: 1, seed: 43 });
    expect(one.choices[0]!.message.content).toBe(texts[1]);
    const streamed = ['', '', ''];
    const finishes: string[] = [];
    for await (const ch of await s.client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } })) {
      for (const c of ch.choices) { streamed[c.index] += c.delta.content ?? ''; if (c.finish_reason) finishes[c.index] = c.finish_reason; }
      if (ch.usage) expect(ch.usage.completion_tokens).toBe(r.usage!.completion_tokens);
    }
    expect(streamed).toEqual(texts);
    expect(finishes).toEqual(r.choices.map((c) => c.finish_reason));
  });

  it('accepts max_completion_tokens, seed, user, metadata, parallel_tool_calls, stream_options; refuses what it cannot do', async () => {
    const r = await s.client.chat.completions.create({ model: 'm', messages: user('x'), max_completion_tokens: 3, seed: 1, user: 'u-1', metadata: { run: 'test' }, parallel_tool_calls: false, tools: [weather] });
    expect(r.usage!.completion_tokens).toBeLessThanOrEqual(3);
    for (const [body, msg] of [
      [{ n: 9 }, /n must be at most 8/], [{ top_logprobs: 21, logprobs: true }, /top_logprobs/], [{ top_logprobs: 2 }, /needs logprobs/],
      [{ logit_bias: { 5: 101 } }, /logit_bias/], [{ store: true }, /store/], [{ audio: { voice: 'alloy', format: 'wav' } }, /audio/],
      [{ functions: [{ name: 'f' }] }, /functions/], [{ tool_choice: 'required' }, /tools/], [{ metadata: { k: 'v'.repeat(600) } }, /metadata/],
    ] as const) {
      const res = await raw({ model: 'm', messages: user('x'), ...body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(msg);
    }
  });
});

describe('chat completions: tools and structured outputs', () => {
  const argsOk = (t: OpenAI.ChatCompletionTool, args: string) => ajv.validate((t as OpenAI.ChatCompletionFunctionTool).function.parameters!, JSON.parse(args));

  it('tool_choice required: a valid call to an allowed function, finish_reason tool_calls, streamed as deltas', async () => {
    const req = { model: 'm', messages: user('Weather in Paris?'), tools: [weather, clock], tool_choice: 'required' as const, parallel_tool_calls: false, max_tokens: 200, temperature: 0.8, seed: 3 };
    const r = await s.client.chat.completions.create(req);
    const c = r.choices[0]!;
    expect(c.finish_reason).toBe('tool_calls');
    expect(c.message.tool_calls).toHaveLength(1);
    const call = c.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.id).toMatch(/^call_/);
    const tool = [weather, clock].find((t) => (t as OpenAI.ChatCompletionFunctionTool).function.name === call.function.name)!;
    expect(tool).toBeDefined();
    expect(argsOk(tool, call.function.arguments)).toBe(true);
    // Streamed: the same call arrives as a tool_calls delta.
    const deltas: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
    let finish = '';
    for await (const ch of await s.client.chat.completions.create({ ...req, stream: true })) {
      deltas.push(...(ch.choices[0]?.delta.tool_calls ?? []));
      if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
    }
    expect(finish).toBe('tool_calls');
    expect(deltas.map((d) => [d.index, d.function?.name, d.function?.arguments])).toEqual([[0, call.function.name, call.function.arguments]]);
  }, 120_000);

  it('a named tool_choice calls that function; none never calls; auto parses what the model writes', async () => {
    const named = await s.client.chat.completions.create({ model: 'm', messages: user('Time?'), tools: [weather, clock], tool_choice: { type: 'function', function: { name: 'get_time' } }, max_tokens: 120, seed: 5, temperature: 0.7 });
    const calls = named.choices[0]!.message.tool_calls! as OpenAI.ChatCompletionMessageFunctionToolCall[];
    expect(calls).toHaveLength(1); // a named function is called once
    for (const c of calls) { expect(c.function.name).toBe('get_time'); expect(argsOk(clock, c.function.arguments)).toBe(true); }
    const none = await s.client.chat.completions.create({ model: 'm', messages: user('Time?'), tools: [clock], tool_choice: 'none', max_tokens: 5 });
    expect(none.choices[0]!.message.tool_calls).toBeUndefined();
    expect(none.choices[0]!.finish_reason).not.toBe('tool_calls');
    const auto = await s.client.chat.completions.create({ model: 'm', messages: user('Time?'), tools: [clock], max_tokens: 5 });
    expect(['stop', 'length', 'tool_calls']).toContain(auto.choices[0]!.finish_reason);
  }, 120_000);

  it('takes a conversation with assistant tool_calls and role "tool" results', async () => {
    const r = await s.client.chat.completions.create({
      model: 'm', max_tokens: 3, tools: [weather],
      messages: [
        { role: 'user', content: 'Weather in Oslo?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo","days":1}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '{"temp_c": 3}' },
      ],
    });
    expect(r.choices[0]!.message.role).toBe('assistant');
    const bad = await raw({ model: 'm', messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{nope' } }] }] });
    expect(bad.status).toBe(400);
  });

  it('response_format json_schema and json_object: the content parses and validates', async () => {
    const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 6 }, ok: { type: 'boolean' }, n: { type: 'integer', minimum: 0, maximum: 9 }, tags: { type: 'array', items: { enum: ['a', 'b'] }, minItems: 1, maxItems: 2 } }, required: ['name', 'ok', 'n', 'tags'], additionalProperties: false };
    const r = await s.client.chat.completions.create({ model: 'm', messages: user('JSON please'), response_format: { type: 'json_schema', json_schema: { name: 'thing', schema, strict: true } }, max_tokens: 150, temperature: 1, seed: 1 });
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(ajv.validate(schema, JSON.parse(r.choices[0]!.message.content!)), r.choices[0]!.message.content!).toBe(true);
    // json_object: any object; with random weights it may run to max_tokens, so only a finished one must parse.
    const o = await s.client.chat.completions.create({ model: 'm', messages: user('JSON'), response_format: { type: 'json_object' }, max_tokens: 40, temperature: 0.5, seed: 9 });
    expect(o.choices[0]!.message.content!.trimStart().startsWith('{')).toBe(true);
    if (o.choices[0]!.finish_reason === 'stop') expect(typeof JSON.parse(o.choices[0]!.message.content!)).toBe('object');
    const bad = await raw({ model: 'm', messages: user('x'), response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '^a+$' } } } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/pattern/);
  }, 300_000);
});
