// Library use with audio and an image in one prompt, streamed:   npx tsx examples/audio-image.ts
import { Phi4MM, Messages } from 'phi4mm';

const model = await Phi4MM.fromPretrained(process.env.PHI4MM_MODEL ?? 'microsoft/Phi-4-multimodal-instruct', { isq: 'q4k' });
const messages = new Messages().addMultimodalMessage('user', 'Listen to the audio and look at the image. How do they relate?', {
  images: [new URL('./assets/image.png', import.meta.url).pathname],
  audios: [new URL('./assets/speech.wav', import.meta.url).pathname],
});
for await (const delta of model.streamChat(messages, { maxTokens: 64 })) process.stdout.write(delta);
process.stdout.write('\n');
