// DOM for the conversation log: user turns (text, thumbnails, players), assistant replies (Markdown rendered
// once per animation frame while streaming), notices and errors, and the per-reply stats line.
import type { Attachment } from './media.js';
import { renderMarkdown } from './render.js';
import type { Usage } from './api.js';

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, cls = '', text = ''): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text) e.textContent = text;
  return e;
}

export function mediaView(a: Attachment): HTMLElement {
  const fig = h('figure', `media media-${a.kind}`);
  if (a.kind === 'image') {
    const img = h('img');
    img.src = a.url;
    img.alt = a.name;
    fig.append(img);
  } else {
    const audio = h('audio');
    audio.controls = true;
    audio.preload = 'metadata';
    audio.src = a.url;
    fig.append(audio);
  }
  fig.append(h('figcaption', '', a.note ? `${a.name} (${a.note})` : a.name));
  return fig;
}

export class Log {
  constructor(private readonly root: HTMLElement) {}

  clear(): void { this.root.replaceChildren(); }

  private add(li: HTMLElement): HTMLElement {
    const stick = this.atBottom();
    this.root.append(li);
    if (stick) this.scroll();
    return li;
  }

  atBottom(): boolean {
    const s = document.scrollingElement ?? document.documentElement;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  scroll(): void {
    const s = document.scrollingElement ?? document.documentElement;
    s.scrollTop = s.scrollHeight;
  }

  user(text: string, media: Attachment[]): HTMLElement {
    const li = h('li', 'turn user');
    li.append(h('div', 'who', 'You'));
    if (media.length) {
      const row = h('div', 'media-row');
      row.append(...media.map(mediaView));
      li.append(row);
    }
    if (text) li.append(h('div', 'text plain', text));
    return this.add(li);
  }

  reply(): Reply {
    const li = h('li', 'turn assistant streaming');
    li.append(h('div', 'who', 'Assistant'));
    const body = h('div', 'text md');
    const stats = h('div', 'stats', 'waiting for the model…');
    li.append(body, stats);
    this.add(li);
    return new Reply(li, body, stats, this);
  }

  notice(text: string, kind: 'error' | 'info' = 'info'): HTMLElement {
    const li = h('li', `turn notice ${kind}`);
    li.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    li.append(h('div', 'text', text));
    return this.add(li);
  }
}

/** One streaming reply: appended text is re-rendered at most once per frame. */
export class Reply {
  text = '';
  private pending = false;
  constructor(readonly li: HTMLElement, private readonly body: HTMLElement, private readonly stats: HTMLElement, private readonly log: Log) {}

  append(delta: string): void {
    this.text += delta;
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.render(); });
  }

  private render(): void {
    const stick = this.log.atBottom();
    this.body.replaceChildren(renderMarkdown(this.text));
    if (stick) this.log.scroll();
  }

  status(s: string): void { this.stats.textContent = s; }

  /** End of the reply: final render and the stats line. */
  finish(state: 'done' | 'stopped' | 'error', info: { usage: Usage | null; ttftMs: number | null; decodeMs: number | null; finish: string | null }): void {
    this.render();
    this.li.classList.remove('streaming');
    this.li.classList.add(state);
    this.li.dataset['state'] = state;
    const parts: string[] = [];
    if (state === 'stopped') parts.push('stopped');
    if (info.finish === 'length') parts.push('hit max tokens');
    if (info.ttftMs != null) parts.push(`first token ${fmtMs(info.ttftMs)}`);
    const u = info.usage;
    if (u) {
      // Decode rate between the first and last token (the first one's wait is prefill, shown above).
      if (info.decodeMs && u.completion_tokens > 1) parts.push(`${((u.completion_tokens - 1) / (info.decodeMs / 1000)).toFixed(1)} tok/s`);
      parts.push(`${u.prompt_tokens} prompt + ${u.completion_tokens} completion tokens`);
      this.li.dataset['promptTokens'] = String(u.prompt_tokens);
      this.li.dataset['completionTokens'] = String(u.completion_tokens);
    }
    this.stats.textContent = parts.join(' · ');
    if (state === 'error' && !this.text) this.li.remove();
  }
}

function fmtMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
