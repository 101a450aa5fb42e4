// Tool calling with the official client (phi4mm serve running): npx tsx examples/openai/tools.ts
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.PHI4MM_URL ?? 'http://127.0.0.1:1234/v1', apiKey: 'none' });
const res = await client.chat.completions.create({
  model: 'phi4mm',
  messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
  tools: [{
    type: 'function',
    function: {
      name: 'get_weather', description: 'Current weather for a city',
      parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Oslo'] } }, required: ['city'], additionalProperties: false },
    },
  }],
  tool_choice: 'required', // or 'auto', 'none', { type: 'function', function: { name: 'get_weather' } }
  max_tokens: 128,
});
const call = res.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
console.log(res.choices[0]!.finish_reason, call.function.name, JSON.parse(call.function.arguments));
