// Agent frameworks against the real server, as their users write them: the Vercel AI SDK (generateText with
// tools, generateObject with a zod schema, streamText — over both the Responses API, its default, and chat
// completions) and LangChain's ChatOpenAI (bindTools, withStructuredOutput). Random weights: the assertions are
// that calls parse into the declared tools and objects validate against their schemas.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { generateObject, generateText, streamText, tool } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { tool as lcTool } from '@langchain/core/tools';
import { startServer, type Running } from './helpers.js';

let s: Running;
beforeAll(async () => { s = await startServer({ maxQueue: 8 }); }, 120_000);
afterAll(async () => { await s?.close(); });

const Weather = z.object({ city: z.enum(['Paris', 'Oslo']), days: z.number().int().min(1).max(7) });
// No bounded free strings: JSON Schema's maxLength counts code points (the grammar honours that), zod's .max()
// counts UTF-16 units, so an astral character in gibberish could pass one and fail the other.
const Person = z.object({ name: z.enum(['Ada', 'Bo', 'Cy']), age: z.number().int().min(0).max(120), member: z.boolean(), tags: z.array(z.enum(['x', 'y'])).max(2) });

describe('Vercel AI SDK', () => {
  const provider = () => createOpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none' });

  for (const api of ['responses', 'chat'] as const) {
    const model = () => (api === 'chat' ? provider().chat('phi4mm') : provider()('phi4mm'));

    it(`generateText with a required tool parses a schema-valid call (${api})`, async () => {
      let executed: unknown = null;
      const r = await generateText({
        model: model(), prompt: 'Weather in Paris for 3 days?', toolChoice: 'required', maxOutputTokens: 300, temperature: 0.7, seed: 1,
        tools: { weather: tool({ description: 'Weather forecast', inputSchema: Weather, execute: async (input) => { executed = input; return { tempC: 3 }; } }) },
        providerOptions: { openai: { parallelToolCalls: false } },
      });
      expect(r.toolCalls).toHaveLength(1);
      expect(r.toolCalls[0]!.toolName).toBe('weather');
      expect(Weather.safeParse(r.toolCalls[0]!.input).success).toBe(true);
      expect(executed).toEqual(r.toolCalls[0]!.input);
      expect(r.finishReason).toBe('tool-calls');
    }, 120_000);

    it(`generateObject with a zod schema returns a valid object (${api})`, async () => {
      const r = await generateObject({ model: model(), schema: Person, prompt: 'Invent a person.', maxOutputTokens: 300, temperature: 0.7, seed: 2 });
      expect(Person.safeParse(r.object).success).toBe(true);
    }, 120_000);

    it(`streamText streams text deltas and finishes (${api})`, async () => {
      const r = streamText({ model: model(), prompt: 'Hello', maxOutputTokens: 6, temperature: 0 });
      let text = '';
      for await (const d of r.textStream) text += d;
      expect(text).toBe(await r.text);
      expect(['stop', 'length']).toContain(await r.finishReason);
      expect((await r.usage).outputTokens).toBeGreaterThan(0);
    }, 120_000);
  }
});

describe('LangChain ChatOpenAI', () => {
  const chat = (extra: Record<string, unknown> = {}) => new ChatOpenAI({ model: 'phi4mm', apiKey: 'none', configuration: { baseURL: `${s.url}/v1` }, temperature: 0.7, maxTokens: 300, maxRetries: 0, modelKwargs: { seed: 3 }, ...extra });

  it('bindTools with tool_choice required yields parsed tool_calls', async () => {
    const weather = lcTool(async (input) => JSON.stringify(input), { name: 'get_weather', description: 'Weather forecast', schema: Weather });
    const msg = await chat().bindTools([weather], { tool_choice: 'required', parallel_tool_calls: false }).invoke('Weather in Oslo?');
    expect(msg.tool_calls).toHaveLength(1);
    expect(msg.tool_calls![0]!.name).toBe('get_weather');
    expect(Weather.safeParse(msg.tool_calls![0]!.args).success).toBe(true);
  }, 120_000);

  it('withStructuredOutput returns an object that validates (json schema and function calling)', async () => {
    for (const method of ['jsonSchema', 'functionCalling'] as const) {
      const out = await chat().withStructuredOutput(Person, { method }).invoke('Invent a person.');
      expect(Person.safeParse(out).success, method).toBe(true);
    }
  }, 180_000);
});
