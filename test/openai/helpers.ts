// One real server on 127.0.0.1 over the tiny golden checkpoint, shared by the client tests of one file.
import OpenAI from 'openai';
import { Phi4MM } from '../../src/api/phi4mm.js';
import { ChatServer, type ServerOptions } from '../../src/server/server.js';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';

export interface Running {
  model: Phi4MM;
  server: ChatServer;
  url: string;
  client: OpenAI;
  close(): Promise<void>;
}

export async function startServer(opts: ServerOptions = {}): Promise<Running> {
  const model = await Phi4MM.fromPretrained(tinyCheckpoint());
  // The client tests name the model 'm'; other names get 404 model_not_found.
  const server = new ChatServer(model, { port: 0, servedModelNames: ['m', 'phi4mm'], ...opts });
  const { url } = await server.listen();
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120_000 });
  return { model, server, url, client, close: () => server.close() };
}

export const utf8 = (bytes: number[][]) => Buffer.from(bytes.flat()).toString('utf8');
