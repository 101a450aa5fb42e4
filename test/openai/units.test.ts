// The pure pieces of the OpenAI surface: tools rendered through the Phi chat template, the card's speech prompts,
// cutting long audio on silence, SRT/VTT timestamps.
import { describe, expect, it } from 'vitest';
import { applyChatTemplate } from '../../src/text/chat.js';
import { preparePrompt } from '../../src/api/prompt.js';
import { DEFAULT_TOOL_SYSTEM, renderAssistantCalls, renderTools, toolPlan, TOOL_CALL_ID } from '../../src/server/tools.js';
import { ASR_PROMPT, astPrompt } from '../../src/server/audio.js';
import { cutOnSilence, timestamp, toSrt, toVtt } from '../../src/server/audio_chunks.js';
import { PHI4MM_ADDED_TOKENS } from '../../src/text/special_tokens.js';

describe('tools through the chat template', () => {
  it('renders tools in the system turn, past calls as <|tool_call|> blocks and results as tool turns', () => {
    const tools = [{ type: 'function' as const, function: { name: 'f', description: 'd', parameters: { type: 'object', properties: { a: { type: 'integer' } } } } }];
    const messages = preparePrompt([
      { role: 'system', content: DEFAULT_TOOL_SYSTEM, tools: renderTools(tools) },
      { role: 'user', content: 'q' },
      { role: 'assistant', content: renderAssistantCalls('', [{ function: { name: 'f', arguments: '{"a": 1}' } }], 'messages.2') },
      { role: 'tool', content: '{"r":2}' },
    ]).messages;
    expect(applyChatTemplate(messages, { addGenerationPrompt: true })).toBe(
      '<|system|>You are a helpful assistant with some tools.<|tool|>[{"name":"f","description":"d","parameters":{"type":"object","properties":{"a":{"type":"integer"}}}}]<|/tool|><|end|>'
      + '<|user|>q<|end|><|assistant|><|tool_call|>[{"name":"f","arguments":{"a":1}}]<|/tool_call|><|end|><|tool|>{"r":2}<|end|><|assistant|>');
    expect(() => renderAssistantCalls('', [{ function: { name: 'f', arguments: '{' } }], 'm')).toThrow(/not valid JSON/);
  });

  it('tool_choice none bans the <|tool_call|> token; auto parses; no tools does neither', () => {
    expect(PHI4MM_ADDED_TOKENS.find((t) => t.id === TOOL_CALL_ID)!.content).toBe('<|tool_call|>');
    const t = [{ type: 'function' as const, function: { name: 'f' } }];
    expect(toolPlan(t, 'none', null)).toEqual({ parse: false, suppressIds: [TOOL_CALL_ID], parallel: true });
    expect(toolPlan(t, 'auto', false)).toEqual({ parse: true, suppressIds: [], parallel: false });
    expect(toolPlan([], 'auto', null).parse).toBe(false);
  });

  it("uses the model card's ASR and AST prompts", () => {
    expect(ASR_PROMPT).toBe('Transcribe the audio clip into text.');
    expect(astPrompt('English')).toBe('Translate the audio to English.');
  });
});

describe('long audio', () => {
  const RATE = 1000;
  /** A loud tone with silent gaps [from, to) in seconds. */
  function signal(sec: number, gaps: Array<[number, number]>): Float32Array {
    const x = new Float32Array(sec * RATE);
    for (let i = 0; i < x.length; i++) x[i] = gaps.some(([a, b]) => i >= a * RATE && i < b * RATE) ? 0 : Math.sin(i * 0.3);
    return x;
  }

  it('cuts inside silent gaps, never past the window, and the pieces tile the audio', () => {
    const x = signal(25, [[7.2, 7.5], [15.0, 15.4], [21, 21.2]]);
    const pieces = cutOnSilence(x, RATE, 10);
    expect(pieces[0]!.start).toBe(0);
    expect(pieces[pieces.length - 1]!.end).toBe(x.length);
    for (const [i, p] of pieces.entries()) {
      expect(p.end - p.start).toBeLessThanOrEqual(10 * RATE);
      if (i) expect(p.start).toBe(pieces[i - 1]!.end);
      if (i < pieces.length - 1) expect(x[p.end - 1]).toBe(0); // the cut ends a silent frame
    }
    expect(pieces.map((p) => p.end / RATE).slice(0, -1).every((t) => [[7.2, 7.5], [15.0, 15.4], [21, 21.2]].some(([a, b]) => t > a! && t <= b!))).toBe(true);
    expect(cutOnSilence(x, RATE, 30)).toEqual([{ start: 0, end: x.length }]);
  });

  it('writes SRT and WebVTT timestamps', () => {
    expect(timestamp(3723.4567, ',')).toBe('01:02:03,457');
    const segs = [{ start: 0, end: 1.5, text: ' a ' }, { start: 1.5, end: 3, text: 'b' }];
    expect(toSrt(segs)).toBe('1\n00:00:00,000 --> 00:00:01,500\na\n\n2\n00:00:01,500 --> 00:00:03,000\nb\n');
    expect(toVtt(segs)).toBe('WEBVTT\n\n00:00:00.000 --> 00:00:01.500\na\n\n00:00:01.500 --> 00:00:03.000\nb\n');
  });
});
