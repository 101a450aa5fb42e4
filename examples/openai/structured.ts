// Structured output (JSON Schema, grammar-constrained): npx tsx examples/openai/structured.ts
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.PHI4MM_URL ?? 'http://127.0.0.1:1234/v1', apiKey: 'none' });
const schema = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 20 }, population: { type: 'integer', minimum: 0 }, capital: { type: 'boolean' } },
  required: ['city', 'population', 'capital'], additionalProperties: false,
};
const res = await client.chat.completions.create({
  model: 'phi4mm',
  messages: [{ role: 'user', content: 'Describe Paris as JSON.' }],
  response_format: { type: 'json_schema', json_schema: { name: 'city', schema, strict: true } },
  max_tokens: 128,
});
console.log(JSON.parse(res.choices[0]!.message.content!));
