// Library use with an image:   npx tsx examples/image.ts   (PHI4MM_MODEL may name a local checkpoint folder)
import { Phi4MM, Messages } from 'phi4mm';

const model = await Phi4MM.fromPretrained(process.env.PHI4MM_MODEL ?? 'microsoft/Phi-4-multimodal-instruct', { isq: 'q4k' });
const messages = new Messages().addImageMessage('user', 'What is depicted here? Please describe the scene in detail.', [
  new URL('./assets/image.png', import.meta.url).pathname, // a URL, a data: URL, base64 or a Buffer work too
]);
const res = await model.chat(messages, { maxTokens: 64 });
console.log(res.text);
console.log(`prompt ${res.usage.avg_prompt_tok_per_sec.toFixed(1)} tok/s, completion ${res.usage.avg_compl_tok_per_sec.toFixed(1)} tok/s`);
