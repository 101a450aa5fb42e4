// Long audio → pieces the model takes at once, cut where it is quietest: the cut for a piece is the lowest-energy
// frame in the second half of its window, so words are rarely split and no piece exceeds the window.
export interface AudioPiece {
  /** Sample offsets [start, end). */
  start: number;
  end: number;
}

const FRAME_SEC = 0.02; // energy frame (20 ms)

/** Cuts `samples` into pieces of at most `windowSec`, on the quietest 20 ms frame in each window's second half. */
export function cutOnSilence(samples: Float32Array, sampleRate: number, windowSec: number): AudioPiece[] {
  const win = Math.max(1, Math.floor(windowSec * sampleRate));
  if (samples.length <= win) return [{ start: 0, end: samples.length }];
  const frame = Math.max(1, Math.round(FRAME_SEC * sampleRate));
  const pieces: AudioPiece[] = [];
  let start = 0;
  while (samples.length - start > win) {
    let best = start + win, bestEnergy = Infinity;
    // Frames ending in (start + win/2, start + win]: the cut is the end of the quietest one (latest on ties).
    for (let f = start + Math.floor(win / 2); f + frame <= start + win; f += frame) {
      let e = 0;
      for (let i = f; i < f + frame; i++) e += samples[i]! * samples[i]!;
      if (e <= bestEnergy) { bestEnergy = e; best = f + frame; }
    }
    pieces.push({ start, end: best });
    start = best;
  }
  pieces.push({ start, end: samples.length });
  return pieces;
}

const pad = (n: number, w: number) => String(n).padStart(w, '0');

/** 00:01:02,345 (SRT) or 00:01:02.345 (WebVTT). */
export function timestamp(sec: number, sep: ',' | '.'): string {
  const ms = Math.round(sec * 1000);
  return `${pad(Math.floor(ms / 3_600_000), 2)}:${pad(Math.floor(ms / 60_000) % 60, 2)}:${pad(Math.floor(ms / 1000) % 60, 2)}${sep}${pad(ms % 1000, 3)}`;
}

export interface TimedText {
  start: number;
  end: number;
  text: string;
}

export function toSrt(segs: readonly TimedText[]): string {
  return segs.map((s, i) => `${i + 1}\n${timestamp(s.start, ',')} --> ${timestamp(s.end, ',')}\n${s.text.trim()}\n`).join('\n');
}

export function toVtt(segs: readonly TimedText[]): string {
  return `WEBVTT\n\n${segs.map((s) => `${timestamp(s.start, '.')} --> ${timestamp(s.end, '.')}\n${s.text.trim()}\n`).join('\n')}`;
}
