// A small Markdown parser for chat replies: text in, a syntax tree out (no HTML strings anywhere, so nothing the
// model writes can become markup; render.ts turns the tree into DOM nodes with textContent). It covers what
// models emit: fenced code, headings, lists, quotes, rules, pipe tables, and inline code/bold/italic/strike/links.
// An unclosed fence runs to the end, so a code block streams in as a code block.

export type Inline =
  | { t: 'text'; v: string }
  | { t: 'code'; v: string }
  | { t: 'strong' | 'em' | 'del'; c: Inline[] }
  | { t: 'link'; href: string; c: Inline[] }
  | { t: 'br' };

export type Align = 'left' | 'center' | 'right' | null;

export type Block =
  | { t: 'p'; c: Inline[] }
  | { t: 'h'; level: number; c: Inline[] }
  | { t: 'code'; lang: string; v: string }
  | { t: 'quote'; c: Block[] }
  | { t: 'list'; ordered: boolean; start: number; items: Block[][] }
  | { t: 'hr' }
  | { t: 'table'; align: Align[]; head: Inline[][]; rows: Inline[][][] };

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,3})([-*+]|(\d{1,9})[.)])(?:\s+(.*))?$/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

/** Links only to these schemes; anything else (javascript:, data:, ...) stays plain text. */
const SAFE_URL = /^(https?:\/\/|mailto:)[^\s<>"]+$/i;

export function parseMarkdown(src: string): Block[] {
  return parseBlocks(src.replace(/\r\n?/g, '\n').split('\n'));
}

function parseBlocks(lines: string[]): Block[] {
  const out: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (!line.trim()) { i++; continue; }
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[1]!;
      const body: string[] = [];
      i++;
      while (i < lines.length && !new RegExp(`^ {0,3}${marker[0]}{${marker.length},}\\s*$`).test(lines[i]!)) body.push(lines[i++]!);
      i++; // the closing fence (or past the end)
      out.push({ t: 'code', lang: fence[2] ?? '', v: body.join('\n') });
      continue;
    }
    const h = HEADING.exec(line);
    if (h) { out.push({ t: 'h', level: h[1]!.length, c: parseInline(h[2] ?? '') }); i++; continue; }
    if (RULE.test(line)) { out.push({ t: 'hr' }); i++; continue; }
    if (QUOTE.test(line)) {
      const inner: string[] = [];
      while (i < lines.length && lines[i]!.trim() && (QUOTE.test(lines[i]!) || inner.length)) {
        const m = QUOTE.exec(lines[i]!);
        inner.push(m ? m[1]! : lines[i]!);
        i++;
      }
      out.push({ t: 'quote', c: parseBlocks(inner) });
      continue;
    }
    if (ITEM.test(line)) { i = parseList(lines, i, out); continue; }
    if (line.includes('|') && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]!) && lines[i + 1]!.includes('-')) {
      i = parseTable(lines, i, out);
      continue;
    }
    const para: string[] = [];
    while (i < lines.length && lines[i]!.trim() && !startsBlock(lines[i]!)) para.push(lines[i++]!.trim());
    if (!para.length) para.push(lines[i++]!.trim()); // a line that looked like a block but was not one
    out.push({ t: 'p', c: parseInline(para.join('\n')) });
  }
  return out;
}

function startsBlock(line: string): boolean {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

/** Items at one indentation; an item's continuation lines are those indented past its marker (or lazy text). */
function parseList(lines: string[], i: number, out: Block[]): number {
  const first = ITEM.exec(lines[i]!)!;
  const ordered = first[3] !== undefined;
  const indent = first[1]!.length;
  const items: Block[][] = [];
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]!);
    if (!m || m[1]!.length !== indent || (m[3] !== undefined) !== ordered) break;
    const contentIndent = indent + m[2]!.length + 1;
    const body: string[] = [m[4] ?? ''];
    i++;
    while (i < lines.length) {
      const l = lines[i]!;
      const lead = l.length - l.trimStart().length;
      if (!l.trim()) {
        // A blank line continues the item only when indented content follows.
        const next = lines[i + 1];
        if (next !== undefined && next.trim() && next.length - next.trimStart().length >= contentIndent) { body.push(''); i++; continue; }
        break;
      }
      if (lead >= Math.min(contentIndent, indent + 2)) { body.push(l.slice(Math.min(lead, contentIndent))); i++; continue; }
      if (startsBlock(l)) break;
      body.push(l.trim()); // lazy continuation of the item's paragraph
      i++;
    }
    items.push(parseBlocks(body));
    while (i < lines.length && !lines[i]!.trim() && lines[i + 1] !== undefined && ITEM.exec(lines[i + 1]!)?.[1]!.length === indent) i++;
  }
  out.push({ t: 'list', ordered, start: ordered ? Number(first[3]) : 1, items });
  return i;
}

function splitRow(line: string): string[] {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells: string[] = [];
  let cur = '';
  for (let k = 0; k < s.length; k++) {
    if (s[k] === '\\' && s[k + 1] === '|') { cur += '|'; k++; continue; }
    if (s[k] === '|') { cells.push(cur.trim()); cur = ''; continue; }
    cur += s[k];
  }
  cells.push(cur.trim());
  return cells;
}

function parseTable(lines: string[], i: number, out: Block[]): number {
  const head = splitRow(lines[i]!);
  const align: Align[] = splitRow(lines[i + 1]!).map((c) => (c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : c.startsWith(':') ? 'left' : null));
  i += 2;
  const rows: Inline[][][] = [];
  while (i < lines.length && lines[i]!.includes('|') && lines[i]!.trim()) {
    const cells = splitRow(lines[i++]!);
    rows.push(head.map((_, k) => parseInline(cells[k] ?? '')));
  }
  out.push({ t: 'table', align: head.map((_, k) => align[k] ?? null), head: head.map((c) => parseInline(c)), rows });
  return i;
}

const PUNCT = /[!-/:-@[-`{-~]/;
const WORD = /[\p{L}\p{N}]/u;

export function parseInline(s: string): Inline[] {
  const out: Inline[] = [];
  let text = '';
  const flush = () => { if (text) { out.push({ t: 'text', v: text }); text = ''; } };
  const push = (n: Inline) => { flush(); out.push(n); };
  let i = 0;
  while (i < s.length) {
    const ch = s[i]!;
    if (ch === '\\' && i + 1 < s.length && PUNCT.test(s[i + 1]!)) { text += s[i + 1]; i += 2; continue; }
    if (ch === '\n') { push({ t: 'br' }); i++; continue; }
    if (ch === '`') {
      let n = 1;
      while (s[i + n] === '`') n++;
      const ticks = '`'.repeat(n);
      const end = findRun(s, ticks, i + n, '`');
      if (end >= 0) {
        let v = s.slice(i + n, end).replace(/\n/g, ' ');
        if (/^ .* $/.test(v) && v.trim()) v = v.slice(1, -1);
        push({ t: 'code', v });
        i = end + n;
        continue;
      }
      text += ticks;
      i += n;
      continue;
    }
    const pair = s.slice(i, i + 2);
    if (pair === '**' || pair === '__' || pair === '~~') {
      const end = s.indexOf(pair, i + 2);
      if (end > i + 2 && !/\s/.test(s[i + 2]!) && !/\s/.test(s[end - 1]!) && (pair !== '__' || boundary(s, i - 1, end + 2))) {
        push({ t: pair === '~~' ? 'del' : 'strong', c: parseInline(s.slice(i + 2, end)) });
        i = end + 2;
        continue;
      }
    }
    if ((ch === '*' || ch === '_') && s[i + 1] !== ch && s[i + 1] !== undefined && !/\s/.test(s[i + 1]!)) {
      const end = findEmphasisEnd(s, ch, i + 1);
      if (end > i + 1 && (ch === '*' || boundary(s, i - 1, end + 1))) {
        push({ t: 'em', c: parseInline(s.slice(i + 1, end)) });
        i = end + 1;
        continue;
      }
    }
    if (ch === '[') {
      const link = parseLink(s, i);
      if (link) { flush(); out.push(...link.nodes); i = link.end; continue; }
    }
    if ((ch === 'h' || ch === 'H') && (i === 0 || !WORD.test(s[i - 1]!))) {
      const m = /^https?:\/\/[^\s<>"'`]+/i.exec(s.slice(i));
      if (m) {
        const url = m[0].replace(/[.,;:!?)\]]+$/, '');
        push({ t: 'link', href: url, c: [{ t: 'text', v: url }] });
        i += url.length;
        continue;
      }
    }
    text += ch;
    i++;
  }
  flush();
  return out;
}

/** `_` emphasis must not open or close inside a word (snake_case stays as is). */
function boundary(s: string, before: number, after: number): boolean {
  return (before < 0 || !WORD.test(s[before]!)) && (after >= s.length || !WORD.test(s[after]!));
}

function findRun(s: string, run: string, from: number, ch: string): number {
  let k = s.indexOf(run, from);
  while (k >= 0) {
    if (s[k + run.length] !== ch && s[k - 1] !== ch) return k;
    k = s.indexOf(run, k + 1);
  }
  return -1;
}

function findEmphasisEnd(s: string, ch: string, from: number): number {
  for (let k = from; k < s.length; k++) {
    if (s[k] === '\\') { k++; continue; }
    if (s[k] === '`') { const n = s.indexOf('`', k + 1); if (n < 0) return -1; k = n; continue; }
    if (s[k] === ch && s[k + 1] === ch) { k++; continue; } // a nested strong
    if (s[k] === ch && !/\s/.test(s[k - 1]!)) return k;
  }
  return -1;
}

function parseLink(s: string, i: number): { nodes: Inline[]; end: number } | null {
  let depth = 0, k = i;
  for (; k < s.length; k++) {
    if (s[k] === '\\') { k++; continue; }
    if (s[k] === '[') depth++;
    else if (s[k] === ']' && --depth === 0) break;
  }
  if (k >= s.length || s[k + 1] !== '(') return null;
  let close = k + 2;
  for (let d = 0; close < s.length; close++) { // balanced parentheses may sit inside the URL
    if (s[close] === '(') d++;
    else if (s[close] === ')' && d-- === 0) break;
  }
  if (close >= s.length) return null;
  const href = s.slice(k + 2, close).trim().split(/\s+/)[0] ?? '';
  const label = parseInline(s.slice(i + 1, k));
  // An unsafe target keeps its label as plain text: the reader still sees what the model wrote.
  if (!SAFE_URL.test(href)) return { nodes: label, end: close + 1 };
  return { nodes: [{ t: 'link', href, c: label }], end: close + 1 };
}
