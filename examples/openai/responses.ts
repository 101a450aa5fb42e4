// The Responses API with an image, streamed as typed events: npx tsx examples/openai/responses.ts
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.PHI4MM_URL ?? 'http://127.0.0.1:1234/v1', apiKey: 'none' });
const image = `data:image/png;base64,${readFileSync(new URL('../assets/image.png', import.meta.url)).toString('base64')}`;
const stream = await client.responses.create({
  model: 'phi4mm',
  instructions: 'Answer in one sentence.',
  input: [{ role: 'user', content: [{ type: 'input_image', image_url: image, detail: 'auto' }, { type: 'input_text', text: 'What is shown?' }] }],
  max_output_tokens: 64,
  stream: true,
});
for await (const event of stream) {
  if (event.type === 'response.output_text.delta') process.stdout.write(event.delta);
  if (event.type === 'response.completed' || event.type === 'response.incomplete') console.log(`\n${event.response.status}, ${event.response.usage!.output_tokens} tokens`);
}
