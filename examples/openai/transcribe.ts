// Speech to text from a file stream: npx tsx examples/openai/transcribe.ts
import { createReadStream } from 'node:fs';
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.PHI4MM_URL ?? 'http://127.0.0.1:1234/v1', apiKey: 'none' });
const srt = await client.audio.transcriptions.create({
  model: 'phi4mm',
  file: createReadStream(new URL('../assets/speech.wav', import.meta.url)),
  response_format: 'srt', // json, text, srt, vtt, verbose_json
  language: 'en',
});
console.log(srt);
