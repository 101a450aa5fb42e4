// Start the server first:   npx phi4mm serve -m microsoft/Phi-4-multimodal-instruct --isq q4k -p 1234
// then run:                 npx tsx examples/server-client.ts
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.PHI4MM_URL ?? 'http://127.0.0.1:1234/v1', apiKey: 'none' });
const image = `data:image/png;base64,${readFileSync(new URL('./assets/image.png', import.meta.url)).toString('base64')}`;

const res = await client.chat.completions.create({
  model: 'phi4mm',
  messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: image } }, { type: 'text', text: 'What is shown in this image?' }] }],
  max_tokens: 64,
});
console.log(res.choices[0]!.message.content);
console.log(res.usage);
