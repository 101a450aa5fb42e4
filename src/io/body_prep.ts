// Runs in the decode worker for large request bodies: JSON.parse, the text-character count, and the base64
// media payloads decoded to bytes, so the main thread never parses, copies or scans multi-megabyte strings.
// Payloads are replaced by `${marker}${index}` strings (the marker is a per-request nonce).

/** Strings longer than this are moved out as blobs. */
export const BLOB_MIN_CHARS = 64 * 1024;

export interface PreparedBody {
  /** Null when `chars` exceeded the limit (the body is not sent back). */
  value: unknown;
  chars: number;
  blobs: Array<Uint8Array | { error: string }>;
}

type Part = { type?: unknown; text?: unknown; input_audio?: { data?: unknown }; image_url?: unknown; audio_url?: unknown };

export function prepareBody(json: string, marker: string, maxChars: number): PreparedBody {
  const value = JSON.parse(json) as { messages?: Array<{ content?: unknown }> };
  const blobs: PreparedBody['blobs'] = [];
  let chars = 0;
  const messages = Array.isArray(value?.messages) ? value.messages : [];
  for (const m of messages) {
    if (typeof m?.content === 'string') chars += m.content.length;
    else if (Array.isArray(m?.content)) for (const p of m.content as Part[]) if (p?.type === 'text' && typeof p.text === 'string') chars += p.text.length;
  }
  if (chars > maxChars) return { value: null, chars, blobs };
  const take = (s: string, prefix: number) => {
    blobs.push(decodeBase64(s.slice(prefix)));
    return `${marker}${blobs.length - 1}`;
  };
  for (const m of messages) {
    if (!Array.isArray(m?.content)) continue;
    for (const p of m.content as Part[]) {
      if (p?.type === 'input_audio' && p.input_audio && typeof p.input_audio.data === 'string' && p.input_audio.data.length > BLOB_MIN_CHARS) {
        p.input_audio.data = take(p.input_audio.data, 0);
      }
      for (const k of ['image_url', 'audio_url'] as const) {
        const holder = p?.type === k ? p : null;
        if (!holder) continue;
        const v = holder[k];
        const obj = v && typeof v === 'object' ? (v as { url?: unknown }) : null;
        const url = typeof v === 'string' ? v : typeof obj?.url === 'string' ? obj.url : null;
        if (!url || url.length <= BLOB_MIN_CHARS) continue;
        const head = /^data:[^,]*;base64,/i.exec(url.slice(0, 256));
        if (!head) continue;
        const ref = take(url, head[0].length);
        if (obj) obj.url = ref; else (holder as Record<string, unknown>)[k] = ref;
      }
    }
  }
  return { value, chars, blobs };
}

function decodeBase64(text: string): Uint8Array | { error: string } {
  const s = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(s) || s.length % 4 === 1) return { error: 'base64 payload is malformed (invalid characters or length)' };
  const buf = Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64');
  const out = new Uint8Array(buf.length);
  out.set(buf);
  return out;
}
