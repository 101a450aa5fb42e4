// The Markdown tree as DOM nodes. Only createElement and textContent: model text never becomes markup, and link
// targets were already limited to http(s)/mailto by the parser.
import { parseMarkdown, type Block, type Inline } from './markdown.js';

export function renderMarkdown(src: string): DocumentFragment {
  const frag = document.createDocumentFragment();
  for (const b of parseMarkdown(src)) frag.append(block(b));
  return frag;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, children: Node[] = [], cls?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  e.append(...children);
  return e;
}

function inlines(xs: Inline[]): Node[] {
  return xs.map(inline);
}

function inline(x: Inline): Node {
  switch (x.t) {
    case 'text': return document.createTextNode(x.v);
    case 'code': { const c = el('code'); c.textContent = x.v; return c; }
    case 'strong': return el('strong', inlines(x.c));
    case 'em': return el('em', inlines(x.c));
    case 'del': return el('del', inlines(x.c));
    case 'br': return el('br');
    case 'link': {
      const a = el('a', inlines(x.c));
      a.href = x.href;
      a.target = '_blank';
      a.rel = 'noopener noreferrer nofollow';
      return a;
    }
  }
}

function block(b: Block): Node {
  switch (b.t) {
    case 'p': return el('p', inlines(b.c));
    case 'h': return el(`h${Math.min(6, b.level + 2)}` as 'h3', inlines(b.c)); // h1/h2 belong to the page
    case 'hr': return el('hr');
    case 'quote': return el('blockquote', b.c.map(block));
    case 'list': {
      const list = b.ordered ? el('ol') : el('ul');
      if (b.ordered && b.start !== 1) (list as HTMLOListElement).start = b.start;
      for (const item of b.items) list.append(el('li', item.map(block)));
      return list;
    }
    case 'code': return codeBlock(b.lang, b.v);
    case 'table': {
      const cell = (tag: 'th' | 'td', c: Inline[], k: number) => {
        const e = el(tag, inlines(c));
        const a = b.align[k];
        if (a) e.style.textAlign = a;
        return e;
      };
      const head = el('thead', [el('tr', b.head.map((c, k) => cell('th', c, k)))]);
      const body = el('tbody', b.rows.map((r) => el('tr', r.map((c, k) => cell('td', c, k)))));
      return el('div', [el('table', [head, body])], 'table-wrap');
    }
  }
}

function codeBlock(lang: string, text: string): Node {
  const code = el('code');
  code.textContent = text;
  if (lang) code.dataset['lang'] = lang;
  const bar = el('div', [], 'code-bar');
  const label = el('span');
  label.textContent = lang || 'code';
  bar.append(label);
  if (navigator.clipboard) {
    const copy = el('button', [], 'copy');
    copy.type = 'button';
    copy.textContent = 'Copy';
    copy.addEventListener('click', () => {
      navigator.clipboard.writeText(text).then(() => { copy.textContent = 'Copied'; }, () => { copy.textContent = 'Copy failed'; });
      setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
    });
    bar.append(copy);
  }
  return el('div', [bar, el('pre', [code])], 'code-block');
}
