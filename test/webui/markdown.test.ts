// The page's Markdown parser (pure: text in, tree out; the DOM side is checked in the browser test).
import { describe, expect, it } from 'vitest';
import { parseInline, parseMarkdown } from '../../web/src/markdown.js';

describe('web UI Markdown parser', () => {
  it('parses fenced code, keeping its text verbatim, and runs an unclosed fence to the end (streaming)', () => {
    expect(parseMarkdown('Intro\n\n```ts\nconst a = `<b>` * 2;\n\n  indented\n```\nafter')).toEqual([
      { t: 'p', c: [{ t: 'text', v: 'Intro' }] },
      { t: 'code', lang: 'ts', v: 'const a = `<b>` * 2;\n\n  indented' },
      { t: 'p', c: [{ t: 'text', v: 'after' }] },
    ]);
    expect(parseMarkdown('~~~\npartial **not bold**')).toEqual([{ t: 'code', lang: '', v: 'partial **not bold**' }]);
  });

  it('parses headings, rules, quotes, nested lists and ordered starts', () => {
    const md = '## Title ##\n---\n> quoted *it*\n> more\n\n- a\n- b\n  - b1\n  - b2\n- c\n\n3. three\n4. four';
    expect(parseMarkdown(md)).toEqual([
      { t: 'h', level: 2, c: [{ t: 'text', v: 'Title' }] },
      { t: 'hr' },
      { t: 'quote', c: [{ t: 'p', c: [{ t: 'text', v: 'quoted ' }, { t: 'em', c: [{ t: 'text', v: 'it' }] }, { t: 'br' }, { t: 'text', v: 'more' }] }] },
      { t: 'list', ordered: false, start: 1, items: [
        [{ t: 'p', c: [{ t: 'text', v: 'a' }] }],
        [{ t: 'p', c: [{ t: 'text', v: 'b' }] }, { t: 'list', ordered: false, start: 1, items: [[{ t: 'p', c: [{ t: 'text', v: 'b1' }] }], [{ t: 'p', c: [{ t: 'text', v: 'b2' }] }]] }],
        [{ t: 'p', c: [{ t: 'text', v: 'c' }] }],
      ] },
      { t: 'list', ordered: true, start: 3, items: [[{ t: 'p', c: [{ t: 'text', v: 'three' }] }], [{ t: 'p', c: [{ t: 'text', v: 'four' }] }]] },
    ]);
  });

  it('parses pipe tables with alignment, escaped pipes and short rows', () => {
    expect(parseMarkdown('| a | b |\n|:--|--:|\n| `x\\|y` | **2** |\n| only |')).toEqual([{
      t: 'table', align: ['left', 'right'],
      head: [[{ t: 'text', v: 'a' }], [{ t: 'text', v: 'b' }]],
      rows: [[[{ t: 'code', v: 'x|y' }], [{ t: 'strong', c: [{ t: 'text', v: '2' }] }]], [[{ t: 'text', v: 'only' }], []]],
    }]);
  });

  it('parses inline code, strong, emphasis, strike and escapes; snake_case stays plain', () => {
    expect(parseInline('use `a*b` and **bold _it_** ~~gone~~ \\*lit\\* snake_case_name')).toEqual([
      { t: 'text', v: 'use ' }, { t: 'code', v: 'a*b' }, { t: 'text', v: ' and ' },
      { t: 'strong', c: [{ t: 'text', v: 'bold ' }, { t: 'em', c: [{ t: 'text', v: 'it' }] }] },
      { t: 'text', v: ' ' }, { t: 'del', c: [{ t: 'text', v: 'gone' }] }, { t: 'text', v: ' *lit* snake_case_name' },
    ]);
    expect(parseInline('a ** b ** c *')).toEqual([{ t: 'text', v: 'a ** b ** c *' }]);
  });

  it('links only http(s) and mailto; other schemes keep their label as text', () => {
    expect(parseInline('[site](https://example.com/a_(b)) [x](javascript:alert(1)) [d](data:text/html,hi) see https://x.org/p.')).toEqual([
      { t: 'link', href: 'https://example.com/a_(b)', c: [{ t: 'text', v: 'site' }] },
      { t: 'text', v: ' ' }, { t: 'text', v: 'x' }, { t: 'text', v: ' ' }, { t: 'text', v: 'd' },
      { t: 'text', v: ' see ' }, { t: 'link', href: 'https://x.org/p', c: [{ t: 'text', v: 'https://x.org/p' }] }, { t: 'text', v: '.' },
    ]);
  });

  it('leaves HTML as text', () => {
    expect(parseMarkdown('<script>alert(1)</script>\n<img src=x onerror=y>')).toEqual([
      { t: 'p', c: [{ t: 'text', v: '<script>alert(1)</script>' }, { t: 'br' }, { t: 'text', v: '<img src=x onerror=y>' }] },
    ]);
  });
});
