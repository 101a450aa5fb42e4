// POST /v1/audio/transcriptions and /v1/audio/translations: a multipart upload (as the official clients send
// it), decoded, cut on silence into pieces the model takes at once, each piece prompted with the model card's
// ASR / AST instruction, and stitched back as text, JSON, SRT, WebVTT or verbose JSON with segment timestamps.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { deflateSync } from 'node:zlib';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { SamplingOptions } from '../api/types.js';
import { HttpError, sendJson as json } from './http.js';
import { parseRequest, requestController, type RouteContext } from './common.js';
import { readMultipart } from './multipart.js';
import { cutOnSilence, toSrt, toVtt, type TimedText } from './audio_chunks.js';
import { checkAudioRateAndLength, decodePool } from './limits.js';
import { probeAudio } from '../io/probe.js';

/** Phi-4-multimodal model card prompts (speech recognition; speech translation to a language). */
export const ASR_PROMPT = 'Transcribe the audio clip into text.';
export const astPrompt = (language: string) => `Translate the audio to ${language}.`;
/** The languages the model card lists for speech input (ISO-639-1 → name). */
export const SPEECH_LANGUAGES: Record<string, string> = { en: 'English', zh: 'Chinese', de: 'German', fr: 'French', it: 'Italian', ja: 'Japanese', es: 'Spanish', pt: 'Portuguese' };
const DEFAULT_WINDOW_SEC = 30;
/** Tokens per piece: generous for 30 s of fast speech (~100 words). */
const MAX_TOKENS_PER_PIECE = 448;

const formField = (name: string) => z.string().optional().describe(name);
const audioRequestSchema = z.object({
  model: z.string().min(1),
  language: formField('language'),
  prompt: z.string().max(2000).optional(),
  response_format: z.enum(['json', 'text', 'srt', 'verbose_json', 'vtt']).default('json'),
  temperature: z.coerce.number().min(0).max(1).optional(),
  'timestamp_granularities[]': z.array(z.enum(['segment', 'word'])).optional(),
  stream: z.enum(['false', 'true']).optional(),
});

type Task = 'transcribe' | 'translate';

export const handleTranscriptions = (ctx: RouteContext, req: IncomingMessage, res: ServerResponse) => handleAudio(ctx, req, res, 'transcribe');
export const handleTranslations = (ctx: RouteContext, req: IncomingMessage, res: ServerResponse) => handleAudio(ctx, req, res, 'translate');

const DEFAULT_MAX_SEC = 1800;

async function handleAudio(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, task: Task): Promise<void> {
  const path = task === 'transcribe' ? '/v1/audio/transcriptions' : '/v1/audio/translations';
  const body = await readMultipart(req, ctx.maxBodyBytes);
  const known = new Set(['model', 'language', 'prompt', 'response_format', 'temperature', 'timestamp_granularities[]', 'stream']);
  const unknown = [...body.fields.keys()].filter((k) => !known.has(k) || (task === 'translate' && (k === 'language' || k.startsWith('timestamp'))));
  if (unknown.length) throw new HttpError(400, 'invalid_request_error', `${unknown.join(', ')}: not supported on ${path}`, unknown[0]!, 'unsupported_parameter');
  const flat: Record<string, unknown> = {};
  for (const [k, v] of body.fields) flat[k] = k.endsWith('[]') ? v : v[v.length - 1];
  const r = parseRequest(audioRequestSchema, flat);
  if (!body.file) throw new HttpError(400, 'invalid_request_error', 'no audio: send the file as the "file" form part', 'file', 'missing_file');
  if (r.stream === 'true') throw new HttpError(400, 'invalid_request_error', 'stream: streamed transcription is not supported; send stream=false', 'stream', 'unsupported_value');
  if (r['timestamp_granularities[]']?.includes('word')) throw new HttpError(400, 'invalid_request_error', 'timestamp_granularities: only "segment" timestamps are available', 'timestamp_granularities', 'unsupported_value');
  let languageName: string | undefined;
  if (r.language !== undefined) {
    languageName = SPEECH_LANGUAGES[r.language.toLowerCase()];
    if (!languageName) throw new HttpError(400, 'invalid_request_error', `language: ${JSON.stringify(r.language)} is not a speech language of this model (ISO-639-1: ${Object.keys(SPEECH_LANGUAGES).join(', ')})`, 'language', 'unsupported_value');
  }
  const maxSec = ctx.opts.transcriptionMaxSec ?? DEFAULT_MAX_SEC;
  const bytes = new Uint8Array(body.file.bytes);
  // The header's length and rate decide before any decoding (a few bytes may declare hours of audio).
  let declared;
  try {
    declared = probeAudio(bytes);
  } catch (e) {
    throw new HttpError(400, 'invalid_request_error', `file: ${(e as Error).message}`, 'file', 'invalid_audio');
  }
  checkAudioRateAndLength(declared.sampleRate, declared.seconds, maxSec, 'transcriptionMaxSec', 'file', `${declared.format} header`);
  let audio;
  try {
    audio = await decodePool().decodeAudio(bytes); // in the decode worker: a long MP3 takes seconds
  } catch (e) {
    throw new HttpError(400, 'invalid_request_error', `file: ${(e as Error).message}`, 'file', 'invalid_audio');
  }
  if (!audio.samples.length) throw new HttpError(400, 'invalid_request_error', 'file: the audio is empty', 'file', 'invalid_audio');
  checkAudioRateAndLength(audio.sampleRate, audio.samples.length / audio.sampleRate, maxSec, 'transcriptionMaxSec', 'file', 'decoded audio'); // headers can lie
  const instruction = task === 'translate' ? astPrompt('English')
    // The card's ASR prompt names no language; a given language is stated in it so the request's choice counts.
    : languageName ? `Transcribe the audio clip into ${languageName} text.` : ASR_PROMPT;
  const text = r.prompt ? `${instruction} Context (earlier audio or spellings): ${r.prompt}` : instruction;
  const window = ctx.opts.transcriptionWindowSec ?? DEFAULT_WINDOW_SEC;
  const pieces = cutOnSilence(audio.samples, audio.sampleRate, window);
  const ctrl = requestController(res);
  const id = randomUUID();
  const segments = await ctx.admit(ctrl, async () => {
    const out: Array<TimedText & { logprobs: number[]; tokens: number }> = [];
    for (const p of pieces) {
      const opts: SamplingOptions = { signal: ctrl.signal, maxTokens: ctx.opts.transcriptionMaxTokens ?? MAX_TOKENS_PER_PIECE, topLogprobs: 0 };
      if (r.temperature !== undefined) opts.temperature = r.temperature;
      const firstToken = ctx.metrics.firstTokenTimer(path);
      const seg = { start: p.start / audio.sampleRate, end: p.end / audio.sampleRate, text: '', logprobs: [] as number[], tokens: 0 };
      const samples = audio.samples.subarray(p.start, p.end);
      for await (const ev of ctx.engine.streamEvents([{ role: 'user', content: [{ type: 'audio', audio: { samples, sampleRate: audio.sampleRate } }, { type: 'text', text }] }], opts)) {
        seg.logprobs.push(...(ev.logprobs ?? []).map((t) => t.logprob));
        if (ev.type === 'delta') { firstToken(); seg.text += ev.text; } else {
          if (ev.finishReason === 'cancelled') return null;
          seg.tokens = ev.usage.completion_tokens;
          ctx.metrics.countTokens(path, ev.usage.prompt_tokens, ev.usage.completion_tokens);
        }
      }
      seg.text = seg.text.trim();
      out.push(seg);
    }
    return out;
  });
  if (!segments) return;
  const full = segments.map((s) => s.text).filter(Boolean).join(' ');
  ctx.log(`audio ${id}: ${task}, ${pieces.length} piece(s), ${(audio.samples.length / audio.sampleRate).toFixed(1)} s`);
  switch (r.response_format) {
    case 'text': return send(res, 'text/plain; charset=utf-8', full + '\n');
    case 'srt': return send(res, 'application/x-subrip; charset=utf-8', toSrt(segments));
    case 'vtt': return send(res, 'text/vtt; charset=utf-8', toVtt(segments));
    case 'json': return json(res, 200, { text: full });
    case 'verbose_json':
      return json(res, 200, {
        task, language: task === 'translate' ? 'english' : (languageName ?? 'unknown').toLowerCase(), duration: audio.samples.length / audio.sampleRate, text: full,
        segments: segments.map((s, i) => ({
          id: i, seek: Math.round(s.start * 100), start: s.start, end: s.end, text: s.text, tokens: [] as number[], temperature: r.temperature ?? 0,
          avg_logprob: s.logprobs.length ? s.logprobs.reduce((a, b) => a + b, 0) / s.logprobs.length : 0,
          compression_ratio: s.text ? Buffer.byteLength(s.text) / deflateSync(s.text).length : 0,
        })),
      });
  }
}

function send(res: ServerResponse, type: string, body: string): void {
  res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
