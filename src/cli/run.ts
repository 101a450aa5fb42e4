// `phi4mm run`: chat in the terminal. Attachments are loaded and checked when attached (a bad one is dropped
// with a message). In a terminal, the prompt's readline is closed while the model answers: keys typed then are
// not echoed into the answer (they are kept and pre-filled at the next prompt) and Ctrl-C stops the answer.
// Ctrl-C at the prompt exits. Piped input is read line by line to the end.
import { createInterface, type Interface } from 'node:readline';
import type { Phi4MM } from '../api/phi4mm.js';
import type { ChatMessage, ContentPart } from '../api/types.js';
import { loadImage } from '../io/image.js';
import { loadAudio } from '../io/audio.js';

const COMMAND_HELP = `Commands:
  /image PATH|URL   attach an image to your next message (checked now)
  /audio PATH|URL   attach an audio clip to your next message (checked now)
  /reset            forget the conversation and pending attachments
  /help             this list
  /exit, /quit      leave (Ctrl-C or Ctrl-D at the prompt too)
Ctrl-C while the model answers stops the answer.`;

export interface RunOptions { maxTokens: number; temperature: number }

interface Session { history: ChatMessage[]; pending: ContentPart[] }

const out = (s: string) => void process.stdout.write(s);

/** Handles one input line; returns false to quit, or the user message to answer. */
async function command(line: string, s: Session): Promise<boolean | ChatMessage> {
  const m = /^\/(\w+)(?:\s+(.*))?$/.exec(line);
  if (!m) return { role: 'user', content: s.pending.length ? [...s.pending, { type: 'text', text: line }] : line };
  const [, cmd, arg = ''] = m;
  switch (cmd) {
    case 'exit': case 'quit': return false;
    case 'help': out(`${COMMAND_HELP}\n`); return true;
    case 'reset': s.history.length = 0; s.pending = []; out('(conversation cleared)\n'); return true;
    case 'image': case 'audio': {
      const src = arg.trim();
      if (!src) { out(`usage: /${cmd} PATH|URL\n`); return true; }
      try {
        if (cmd === 'image') {
          const img = await loadImage(src);
          s.pending.push({ type: 'image', image: { width: img.width, height: img.height, data: img.data, channels: 3 } });
          out(`(attached image ${src}: ${img.width}×${img.height})\n`);
        } else {
          const a = await loadAudio(src);
          s.pending.push({ type: 'audio', audio: a });
          out(`(attached audio ${src}: ${(a.samples.length / a.sampleRate).toFixed(1)} s at ${a.sampleRate} Hz)\n`);
        }
      } catch (e) {
        out(`(not attached: ${(e as Error).message})\n`);
      }
      return true;
    }
    default: out(`unknown command /${cmd}; type /help for the list\n`); return true;
  }
}

async function answer(model: Phi4MM, s: Session, user: ChatMessage, o: RunOptions, signal: AbortSignal): Promise<void> {
  let text = '';
  try {
    for await (const ev of model.streamEvents([...s.history, user], { maxTokens: o.maxTokens, temperature: o.temperature, signal })) {
      if (ev.type === 'delta') { text += ev.text; out(ev.text); continue; }
      if (ev.finishReason === 'cancelled') { out('\n(stopped)\n'); return; }
      const u = ev.usage;
      out(`\n[${u.completion_tokens} tokens, ${u.avg_prompt_tok_per_sec.toFixed(1)} prompt tok/s, ${u.avg_compl_tok_per_sec.toFixed(1)} tok/s${ev.finishReason === 'length' ? ', stopped at max tokens' : ''}]\n`);
    }
    s.history.push(user, { role: 'assistant', content: text });
    s.pending = [];
  } catch (e) {
    out(`\nerror: ${(e as Error).message}\n`);
  }
}

export async function runChat(model: Phi4MM, o: RunOptions): Promise<void> {
  const s: Session = { history: [], pending: [] };
  out('Type a message; /help lists the commands.\n');
  if (process.stdin.isTTY) return runTty(model, s, o);
  // Piped: every line in order; SIGINT stops the answer in progress, or exits between answers.
  let ctrl: AbortController | null = null;
  const onSigint = () => { if (ctrl) ctrl.abort(); else process.exit(130); };
  process.on('SIGINT', onSigint);
  const rl = createInterface({ input: process.stdin, terminal: false });
  try {
    for await (const raw of rl) {
      const line = raw.trim();
      if (!line) continue;
      const r = await command(line, s);
      if (r === false) break;
      if (r === true) continue;
      ctrl = new AbortController();
      await answer(model, s, r, o, ctrl.signal);
      ctrl = null;
    }
  } finally {
    process.off('SIGINT', onSigint);
    rl.close();
  }
}

async function runTty(model: Phi4MM, s: Session, o: RunOptions): Promise<void> {
  const history: string[] = [];
  let typedAhead = '';
  for (;;) {
    const line = await prompt(history, typedAhead);
    typedAhead = '';
    if (line === null) break; // Ctrl-C / Ctrl-D at the prompt
    if (!line.trim()) continue;
    const r = await command(line.trim(), s);
    if (r === false) break;
    if (r === true) continue;
    // While answering: raw mode, no echo; Ctrl-C aborts, other keys are kept for the next prompt.
    const ctrl = new AbortController();
    const onData = (d: Buffer) => {
      const t = d.toString('utf8');
      if (t.includes('\x03')) ctrl.abort();
      else typedAhead += t.replace(/[\r\n]+/g, ' ').replace(/[\x00-\x1f\x7f]/g, '');
    };
    process.stdin.setRawMode(true);
    process.stdin.on('data', onData);
    process.stdin.resume();
    try {
      await answer(model, s, r, o, ctrl.signal);
    } finally {
      process.stdin.off('data', onData);
      process.stdin.setRawMode(false);
      process.stdin.pause();
    }
  }
  out('\n');
}

/** One line from a fresh readline (closed again before the answer); null on Ctrl-C or Ctrl-D. */
function prompt(history: string[], prefill: string): Promise<string | null> {
  return new Promise((resolve) => {
    const rl: Interface = createInterface({ input: process.stdin, output: process.stdout, terminal: true, history, historySize: 200 });
    let done = false;
    const finish = (v: string | null) => { if (done) return; done = true; rl.close(); resolve(v); };
    rl.on('line', (l) => { history.splice(0, history.length, ...((rl as unknown as { history: string[] }).history ?? [])); finish(l); });
    rl.on('SIGINT', () => finish(null));
    rl.on('close', () => finish(null));
    rl.setPrompt('> ');
    rl.prompt();
    if (prefill) rl.write(prefill);
  });
}
