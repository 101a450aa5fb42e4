// The chat page: composer (text, attachments by picker / drag and drop / paste, microphone), settings, the
// conversation sent as a whole each turn, a streaming reply with a stop button, and the API key asked for only
// when the server answers 401 (kept in localStorage).
import { ApiError, fetchHealth, streamChat, type ApiMessage, type ChatBody, type ContentPart, type Usage } from './api.js';
import { dataUrlPayload, fileToAttachment, MediaInputError, Recorder, type Attachment } from './media.js';
import { h, Log, mediaView } from './view.js';

interface Turn { role: 'user' | 'assistant'; text: string; media: Attachment[] }

const KEY_STORE = 'phi4mm.apiKey';
const SETTINGS_STORE = 'phi4mm.settings';
const HEALTH_POLL_MS = 1000;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  log: new Log($('log')),
  model: $('model'),
  form: $<HTMLFormElement>('composer'),
  input: $<HTMLTextAreaElement>('input'),
  file: $<HTMLInputElement>('file'),
  record: $<HTMLButtonElement>('record'),
  send: $<HTMLButtonElement>('send'),
  stop: $<HTMLButtonElement>('stop'),
  pending: $('pending'),
  settings: $('settings'),
  toggleSettings: $<HTMLButtonElement>('toggle-settings'),
  newChat: $<HTMLButtonElement>('new-chat'),
  system: $<HTMLTextAreaElement>('system'),
  temperature: $<HTMLInputElement>('temperature'),
  maxTokens: $<HTMLInputElement>('max-tokens'),
  seed: $<HTMLInputElement>('seed'),
  forgetKey: $<HTMLButtonElement>('forget-key'),
  drop: $('drop-overlay'),
  keyDialog: $<HTMLDialogElement>('key-dialog'),
  keyInput: $<HTMLInputElement>('key-input'),
  keyReason: $('key-reason'),
  keyCancel: $<HTMLButtonElement>('key-cancel'),
};

let modelId = 'phi4mm';
let history: Turn[] = [];
let pending: Attachment[] = [];
let running: AbortController | null = null;
let recorder: Recorder | null = null;
/** Bumped by "New chat": a reply still ending after it must not touch the new conversation. */
let conversation = 0;

// ------------------------------------------------------------------ settings

const settingInputs = [ui.system, ui.temperature, ui.maxTokens, ui.seed];

function loadSettings(): void {
  try {
    const s = JSON.parse(localStorage.getItem(SETTINGS_STORE) ?? '{}') as Record<string, string>;
    for (const el of settingInputs) if (typeof s[el.id] === 'string') el.value = s[el.id]!;
  } catch { /* corrupt store: keep the defaults */ }
}

function saveSettings(): void {
  localStorage.setItem(SETTINGS_STORE, JSON.stringify(Object.fromEntries(settingInputs.map((el) => [el.id, el.value]))));
}

/** Numbers are passed through as typed: the server validates ranges and its 400 is shown in the chat. */
function samplingFields(): Partial<ChatBody> {
  const out: Partial<ChatBody> = {};
  const num = (el: HTMLInputElement) => (el.value.trim() === '' ? null : Number(el.value));
  const t = num(ui.temperature), m = num(ui.maxTokens), s = num(ui.seed);
  if (t != null) out.temperature = t;
  if (m != null) out.max_tokens = m;
  if (s != null) out.seed = s;
  return out;
}

// ------------------------------------------------------------------ API key

function storedKey(): string | null {
  return localStorage.getItem(KEY_STORE);
}

function askKey(reason: string): Promise<string | null> {
  ui.keyReason.textContent = reason;
  ui.keyInput.value = '';
  ui.keyDialog.returnValue = '';
  ui.keyDialog.showModal();
  return new Promise((done) => {
    ui.keyDialog.addEventListener('close', () => {
      const key = ui.keyDialog.returnValue === 'ok' ? ui.keyInput.value.trim() : '';
      if (key) localStorage.setItem(KEY_STORE, key);
      done(key || null);
    }, { once: true });
  });
}

// ------------------------------------------------------------------ attachments

function renderPending(): void {
  ui.pending.replaceChildren(...pending.map((a, k) => {
    const chip = h('div', 'chip');
    chip.append(mediaView(a));
    const x = h('button', 'remove', '×');
    x.type = 'button';
    x.title = `Remove ${a.name}`;
    x.setAttribute('aria-label', `Remove ${a.name}`);
    x.addEventListener('click', () => { pending.splice(k, 1); renderPending(); });
    chip.append(x);
    return chip;
  }));
  ui.pending.hidden = pending.length === 0;
}

/** Attachments are converted one request at a time, so they appear (and are sent) in the order they were added. */
let attaching: Promise<void> = Promise.resolve();

function attachFiles(files: Iterable<File>): Promise<void> {
  const list = [...files];
  const run = attaching.then(() => attachInOrder(list));
  attaching = run.catch(() => {});
  return run;
}

async function attachInOrder(files: File[]): Promise<void> {
  for (const f of files) {
    try {
      pending.push(await fileToAttachment(f));
    } catch (e) {
      ui.log.notice(e instanceof MediaInputError ? e.message : `${f.name}: ${(e as Error).message}`, 'error');
    }
  }
  renderPending();
}

async function toggleRecording(): Promise<void> {
  if (recorder) {
    const r = recorder;
    recorder = null;
    setRecording(false);
    try {
      const rec = r.stop();
      await attaching; // after the files added before it
      pending.push(await rec);
      renderPending();
    } catch (e) {
      ui.log.notice((e as Error).message, 'error');
    }
    return;
  }
  try {
    recorder = await Recorder.start();
    setRecording(true);
  } catch (e) {
    ui.log.notice((e as Error).message, 'error');
  }
}

let recordTimer = 0;
function setRecording(on: boolean): void {
  ui.record.classList.toggle('on', on);
  ui.record.setAttribute('aria-pressed', String(on));
  clearInterval(recordTimer);
  if (!on) { ui.record.textContent = 'Record'; return; }
  const t0 = Date.now();
  const tick = () => { const s = Math.floor((Date.now() - t0) / 1000); ui.record.textContent = `Stop ${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`; };
  tick();
  recordTimer = window.setInterval(tick, 500);
}

// ------------------------------------------------------------------ chat

function toApi(t: Turn): ApiMessage {
  if (t.role === 'assistant' || t.media.length === 0) return { role: t.role, content: t.text };
  const parts: ContentPart[] = [];
  for (const a of t.media) {
    if (a.kind === 'image') parts.push({ type: 'image_url', image_url: { url: a.url } });
    else parts.push({ type: 'input_audio', input_audio: { data: dataUrlPayload(a.url), format: a.format ?? 'wav' } });
  }
  if (t.text) parts.push({ type: 'text', text: t.text });
  return { role: 'user', content: parts };
}

function requestBody(): ChatBody {
  const messages: ApiMessage[] = [];
  if (ui.system.value.trim()) messages.push({ role: 'system', content: ui.system.value.trim() });
  messages.push(...history.map(toApi));
  return { model: modelId, messages, ...samplingFields() };
}

function setBusy(ctrl: AbortController | null): void {
  running = ctrl;
  ui.send.hidden = !!ctrl;
  ui.stop.hidden = !ctrl;
  document.body.classList.toggle('busy', !!ctrl);
}

async function send(): Promise<void> {
  if (running) return;
  const text = ui.input.value.trim();
  if (!text && !pending.length) return;
  const media = pending;
  const userLi = ui.log.user(text, media);
  const turn: Turn = { role: 'user', text, media };
  history.push(turn);
  ui.input.value = '';
  pending = [];
  renderPending();
  autoGrow();

  const ctrl = new AbortController();
  const conv = conversation;
  setBusy(ctrl);
  const reply = ui.log.reply();
  let usage: Usage | null = null, finish: string | null = null, tFirst: number | null = null, tEnd: number | null = null;
  let t0 = performance.now();
  let askedKey = false;
  try {
    for (;;) {
      try {
        for await (const ev of streamChat(requestBody(), storedKey(), ctrl.signal)) {
          if (ev.type === 'delta') {
            if (tFirst === null) { tFirst = performance.now(); reply.status('streaming…'); }
            tEnd = performance.now();
            reply.append(ev.text);
          } else if (ev.type === 'finish') finish = ev.reason;
          else usage = ev.usage;
        }
        break;
      } catch (e) {
        // A 401 comes before any token: ask for the key (once per send) and try again.
        if (e instanceof ApiError && e.status === 401 && !askedKey && !ctrl.signal.aborted) {
          askedKey = true;
          const had = storedKey();
          reply.status('waiting for the API key…');
          const key = await askKey(had ? 'The server refused the saved API key. Enter the right one:' : 'This server needs an API key. Enter it once; it is kept in this browser.');
          if (key) { t0 = performance.now(); continue; } // time to first token counts from the retry
        }
        throw e;
      }
    }
    const stopped = ctrl.signal.aborted;
    const info = { usage, finish, ttftMs: tFirst === null ? null : tFirst - t0, decodeMs: tFirst !== null && tEnd !== null ? tEnd - tFirst : null };
    reply.finish(stopped ? 'stopped' : 'done', info);
    if (reply.text && conv === conversation) history.push({ role: 'assistant', text: reply.text, media: [] });
  } catch (e) {
    reply.finish('error', { usage: null, finish: null, ttftMs: null, decodeMs: null });
    if (conv !== conversation) return;
    ui.log.notice(e instanceof ApiError ? e.message : `Unexpected error: ${(e as Error).message}`, 'error');
    // The failed turn leaves the conversation (so the next send is not refused again) and returns to the
    // composer to fix and resend.
    if (!reply.text) {
      history.splice(history.indexOf(turn), 1);
      userLi.classList.add('unsent');
      userLi.title = 'Not sent: the server refused it. It is back in the message box.';
      if (!ui.input.value) ui.input.value = text;
      pending = [...media, ...pending];
      renderPending();
      autoGrow();
    } else {
      history.push({ role: 'assistant', text: reply.text, media: [] });
    }
  } finally {
    setBusy(null);
    ui.input.focus();
  }
}

function autoGrow(): void {
  ui.input.style.height = 'auto';
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}

// ------------------------------------------------------------------ wiring

function hasFiles(e: DragEvent): boolean {
  return !!e.dataTransfer && Array.from(e.dataTransfer.types).includes('Files');
}

function wire(): void {
  ui.form.addEventListener('submit', (e) => { e.preventDefault(); void send(); });
  ui.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); void send(); }
  });
  ui.input.addEventListener('input', autoGrow);
  ui.stop.addEventListener('click', () => running?.abort());
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && running && !ui.keyDialog.open) running.abort(); });
  ui.file.addEventListener('change', () => { void attachFiles(Array.from(ui.file.files ?? [])).then(() => { ui.file.value = ''; }); });
  ui.record.addEventListener('click', () => void toggleRecording());
  ui.toggleSettings.addEventListener('click', () => {
    ui.settings.hidden = !ui.settings.hidden;
    ui.toggleSettings.setAttribute('aria-expanded', String(!ui.settings.hidden));
  });
  for (const el of settingInputs) el.addEventListener('change', saveSettings);
  ui.keyCancel.addEventListener('click', () => ui.keyDialog.close('cancel'));
  ui.forgetKey.addEventListener('click', () => { localStorage.removeItem(KEY_STORE); ui.log.notice('The API key was removed from this browser.'); });
  ui.newChat.addEventListener('click', () => {
    running?.abort();
    conversation++;
    history = [];
    ui.log.clear();
    ui.input.focus();
  });

  let depth = 0; // dragenter/dragleave fire for every child crossed
  document.addEventListener('dragenter', (e) => { if (hasFiles(e)) { depth++; ui.drop.hidden = false; } });
  document.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; ui.drop.hidden = true; } });
  document.addEventListener('dragover', (e) => { if (hasFiles(e)) e.preventDefault(); });
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    ui.drop.hidden = true;
    if (e.dataTransfer?.files.length) void attachFiles(Array.from(e.dataTransfer.files));
  });
  document.addEventListener('paste', (e) => {
    const files = Array.from(e.clipboardData?.files ?? []);
    if (!files.length) return; // plain text pastes as usual
    e.preventDefault();
    void attachFiles(files);
  });
}

loadSettings();
wire();
renderPending();
/** The model name from /health; while the server is still loading the model, its progress, polled. */
async function watchHealth(): Promise<void> {
  for (;;) {
    try {
      const h = await fetchHealth();
      if (h.state === 'ready') { modelId = h.model; ui.model.textContent = h.model; break; }
      ui.model.textContent = `loading the model: ${h.stage} ${Math.round(h.progress * 100)} %`;
    } catch (e) {
      ui.log.notice(`Could not reach the server's /health: ${(e as Error).message}`, 'error');
      break;
    }
    await new Promise((r) => setTimeout(r, HEALTH_POLL_MS));
  }
  document.body.dataset['ready'] = 'true';
}

void watchHealth();
