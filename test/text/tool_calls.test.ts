// Tool-call parsing: the <|tool_call|> and functools[...] forms, invalid blocks left as text, and the streaming
// parser agreeing with the whole-output parse for every split of the text into two or three deltas.
import { describe, expect, it } from 'vitest';
import { normalizeCalls, parseToolCalls, type ToolStreamEvent, ToolCallStreamParser } from '../../src/text/tool_calls.js';

function ids(): () => string {
  let n = 0;
  return () => `call_${n++}`;
}

const CASES: [string, string, { content: string; calls: [string, string][] }][] = [
  ['plain text', 'Hello <|tool but no call', { content: 'Hello <|tool but no call', calls: [] }],
  ['one call', '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]<|/tool_call|>',
    { content: '', calls: [['get_weather', '{"city":"Paris"}']] }],
  ['text around two calls', 'Sure. <|tool_call|>[{"name":"a","arguments":{}},{"name":"b","parameters":{"x":[1,"]"]}}]<|/tool_call|> done',
    { content: 'Sure.  done', calls: [['a', '{}'], ['b', '{"x":[1,"]"]}']] }],
  ['single object, OpenAI shape, string arguments', '<|tool_call|>{"type":"function","function":{"name":"f","arguments":"{\\"q\\":1}"}}<|/tool_call|>',
    { content: '', calls: [['f', '{"q":1}']] }],
  ['two blocks', '<|tool_call|>[{"name":"a"}]<|/tool_call|><|tool_call|>[{"name":"b","arguments":{"k":"<|/tool_call|>"}}]<|/tool_call|>',
    // The second block ends at the first close marker (inside the string), so its JSON is cut and stays text.
    { content: '<|tool_call|>[{"name":"b","arguments":{"k":"<|/tool_call|>"}}]<|/tool_call|>', calls: [['a', '{}']] }],
  ['unterminated block at the end', 'x<|tool_call|>[{"name":"a","arguments":{"n":1}}]', { content: 'x', calls: [['a', '{"n":1}']] }],
  ['invalid JSON stays text', '<|tool_call|>[{"name": oops}]<|/tool_call|>tail', { content: '<|tool_call|>[{"name": oops}]<|/tool_call|>tail', calls: [] }],
  ['functools form', '  functools[{"name": "get_match_result", "arguments": {"match": "Arsenal vs ManCity"}}]',
    { content: '', calls: [['get_match_result', '{"match":"Arsenal vs ManCity"}']] }],
  ['functools then text', 'functools[{"name":"a","arguments":{"s":"[{"}}] and more', { content: ' and more', calls: [['a', '{"s":"[{"}']] }],
  ['functools only at the start', 'Use functools[{"name":"a"}] like this', { content: 'Use functools[{"name":"a"}] like this', calls: [] }],
  ['a prefix of functools that is not', 'functional', { content: 'functional', calls: [] }],
  ['unicode content', 'héllo 😀 <|tool_call|>[{"name":"é","arguments":{"v":"ü"}}]<|/tool_call|>', { content: 'héllo 😀 ', calls: [['é', '{"v":"ü"}']] }],
];

function collect(events: ToolStreamEvent[]): { content: string; calls: [string, string][]; indices: number[]; ids: string[] } {
  let content = '';
  const calls: [string, string][] = [];
  const indices: number[] = [], idList: string[] = [];
  for (const e of events) {
    if (e.type === 'content') content += e.text;
    else { calls.push([e.delta.function.name, e.delta.function.arguments]); indices.push(e.delta.index); idList.push(e.delta.id); }
  }
  return { content, calls, indices, ids: idList };
}

describe('parseToolCalls', () => {
  it.each(CASES)('%s', (_label, text, want) => {
    const r = parseToolCalls(text, { newId: ids() });
    expect(r.content).toBe(want.content);
    expect(r.toolCalls.map((c) => [c.function.name, c.function.arguments])).toEqual(want.calls);
    r.toolCalls.forEach((c, i) => { expect(c.id).toBe(`call_${i}`); expect(c.type).toBe('function'); });
  });

  it('default ids look like OpenAI ids and differ', () => {
    const r = parseToolCalls('<|tool_call|>[{"name":"a"},{"name":"b"}]<|/tool_call|>');
    expect(r.toolCalls[0]!.id).toMatch(/^call_[A-Za-z0-9]{24}$/);
    expect(r.toolCalls[0]!.id).not.toBe(r.toolCalls[1]!.id);
  });

  it('normalizeCalls refuses non-calls', () => {
    expect(normalizeCalls([])).toBeNull();
    expect(normalizeCalls([{ arguments: {} }])).toBeNull();
    expect(normalizeCalls('x')).toBeNull();
    expect(normalizeCalls({ name: 'a' })).toEqual([{ name: 'a', arguments: '{}' }]);
  });
});

describe('ToolCallStreamParser', () => {
  it.each(CASES)('every 2- and 3-way split agrees with the whole parse: %s', (_label, text, want) => {
    const chars = [...text]; // split on code points: deltas are decoded text
    const run = (parts: string[]) => {
      const p = new ToolCallStreamParser({ newId: ids() });
      const ev = parts.flatMap((s) => p.push(s));
      return collect([...ev, ...p.end()]);
    };
    const whole = run([text]);
    expect(whole.content).toBe(want.content);
    expect(whole.calls).toEqual(want.calls);
    expect(whole.indices).toEqual(want.calls.map((_, i) => i));
    for (let i = 0; i <= chars.length; i++) {
      const a = chars.slice(0, i).join(''), rest = chars.slice(i);
      const got = run([a, rest.join('')]);
      expect({ content: got.content, calls: got.calls }, `split at ${i}`).toEqual({ content: whole.content, calls: whole.calls });
      if (chars.length < 80) {
        for (let j = 0; j <= rest.length; j++) {
          const three = run([a, rest.slice(0, j).join(''), rest.slice(j).join('')]);
          expect({ content: three.content, calls: three.calls }, `split at ${i}, ${i + j}`).toEqual({ content: whole.content, calls: whole.calls });
        }
      }
    }
  });

  it('never emits text that could still become a marker; emits a call as soon as its block closes', () => {
    const p = new ToolCallStreamParser({ newId: ids() });
    expect(p.push('Hi <|tool_ca')).toEqual([{ type: 'content', text: 'Hi ' }]);
    expect(p.push('ll|>[{"name":"f","argu')).toEqual([]);
    expect(p.push('ments":{"a":1}}]<|/tool_call|>')).toEqual([
      { type: 'tool_call', delta: { index: 0, id: 'call_0', type: 'function', function: { name: 'f', arguments: '{"a":1}' } } },
    ]);
    expect(p.toolCallCount).toBe(1);
    expect(p.push(' <|')).toEqual([{ type: 'content', text: ' ' }]);
    expect(p.end()).toEqual([{ type: 'content', text: '<|' }]);
  });

  it('holds back a possible functools answer only at the start', () => {
    const p = new ToolCallStreamParser({ newId: ids() });
    expect(p.push(' func')).toEqual([]);
    expect(p.push('tools[{"name":"a"}')).toEqual([]);
    expect(p.push(']')).toEqual([{ type: 'tool_call', delta: { index: 0, id: 'call_0', type: 'function', function: { name: 'a', arguments: '{}' } } }]);
    const q = new ToolCallStreamParser();
    expect(q.push('ok func')).toEqual([{ type: 'content', text: 'ok func' }]);
  });
});
