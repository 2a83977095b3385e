// Live views on a terminal: a directive's progress bar (`progressBar()`, an
// onProgress), and the line `weft worker` keeps of the tasks it served. Each
// is one status line rewritten in place, so each draws only on a TTY: on a
// pipe, a file or a CI log the carriage returns and escape codes would be
// noise, and nothing is written at all.

import type { Progress } from '../core/execution/progress.ts';
import { ArgumentError } from '../core/errors.ts';
import { shown } from '../core/options.ts';

/** Where a live view draws: `process.stderr`, or any stream with the same three members. */
export interface LiveStream {
  /** Nothing is drawn unless this is true. */
  readonly isTTY?: boolean;
  /** The terminal's width; lines are cut to it (80 when absent or 0). */
  readonly columns?: number;
  write(text: string): unknown;
}

/** Options of `progressBar`. */
export interface ProgressBarOptions {
  /** Where to draw; default `process.stderr`. Nothing is drawn unless `stream.isTTY`. */
  stream?: LiveStream;
  /** Shown before the bar; default `'weft'`. */
  label?: string;
  /**
   * The tasks the directive will complete, for a source whose length the
   * directive cannot know until its end (a generator, say); default
   * `Progress.total`.
   */
  total?: number;
  /** The least time between two redraws, in ms; default 100. */
  intervalMs?: number;
}

const CLEAR_TO_END = '\x1b[K';
/** Rates are measured over the last RATE_SPAN_MS, so that they follow the pace of now rather than of the start. */
const RATE_SPAN_MS = 5_000;
const SAMPLE_GAP_MS = 100;

/** One line rewritten in place, at most once per interval; the last state asked for is always drawn. */
export class StatusLine {
  private render: (() => string) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private drawnAt = -Infinity;
  private shown = false;

  constructor(
    private readonly stream: LiveStream,
    private readonly intervalMs: number,
  ) {}

  /** Draws `render()` now, or once the interval since the last draw has passed. */
  update(render: () => string): void {
    this.render = render;
    const wait = this.drawnAt + this.intervalMs - performance.now();
    if (wait <= 0) return this.draw();
    // Unref'd: a pending redraw never keeps the process alive.
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.draw();
    }, wait).unref();
  }

  /** Writes `line` above the status line, which is drawn again below it. */
  above(line: string): void {
    this.stream.write(`\r${CLEAR_TO_END}${line}\n`);
    if (this.shown) this.draw();
  }

  /** Replaces the status line with `line`, for good: later updates start a new one. */
  end(line: string): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.render = undefined;
    this.shown = false;
    this.drawnAt = -Infinity;
    this.stream.write(`\r${this.fit(line)}${CLEAR_TO_END}\n`);
  }

  private draw(): void {
    if (this.render === undefined) return;
    this.stream.write(`\r${this.fit(this.render())}${CLEAR_TO_END}`);
    this.drawnAt = performance.now();
    this.shown = true;
  }

  /** Cut to the terminal's width less one column, so that no line wraps and \r still reaches its start. */
  private fit(line: string): string {
    const width = Math.max(10, (this.stream.columns || 80) - 1);
    return line.length <= width ? line : line.slice(0, width);
  }
}

/** Events per second over the last RATE_SPAN_MS. */
export class Rate {
  private readonly samples: { at: number; count: number }[] = [];

  /** Records `count` (a running total) at `at`, and returns the rate. */
  sample(count: number, at: number): number {
    const samples = this.samples;
    // A sample per SAMPLE_GAP_MS at most: onProgress can be called thousands of times a second.
    if (samples.length === 0 || at - samples[samples.length - 1]!.at >= SAMPLE_GAP_MS) samples.push({ at, count });
    while (samples.length > 2 && at - samples[1]!.at >= RATE_SPAN_MS) samples.shift();
    const first = samples[0]!;
    const span = at - first.at;
    return span <= 0 ? 0 : ((count - first.count) * 1000) / span;
  }
}

/**
 * An `onProgress` that draws the directive's progress on the terminal: a
 * bar when the total is known, the tasks done, their rate, the tasks running
 * (sent, no result yet), waiting (not yet sent) and failed, and the time
 * left at the current rate; and a last line as the directive ends. It
 * redraws at most every `intervalMs`, and draws nothing unless its stream
 * is a TTY.
 *
 * ```ts
 * await IndexedStream.from(inputs).map(Resize).run(runtime, { onProgress: progressBar() });
 * ```
 *
 * One bar draws one directive at a time; it may be used again once that
 * directive has ended.
 */
export function progressBar(options: ProgressBarOptions = {}): (progress: Readonly<Progress>) => void {
  checkProgressBarOptions(options);
  const stream = options.stream ?? process.stderr;
  if (stream.isTTY !== true) return () => {};
  const label = options.label ?? 'weft';
  const line = new StatusLine(stream, options.intervalMs ?? 100);
  let startedAt: number | undefined;
  let rate = new Rate();
  return (progress) => {
    const now = performance.now();
    if (startedAt === undefined) startedAt = now;
    const perSecond = rate.sample(progress.done, now);
    const total = options.total ?? progress.total;
    if (progress.outcome === undefined) {
      line.update(() => barLine(label, progress, total, perSecond, stream.columns || 80));
      return;
    }
    line.end(endLine(label, progress, total, now - startedAt));
    startedAt = undefined;
    rate = new Rate();
  };
}

function checkProgressBarOptions(options: ProgressBarOptions): void {
  if (typeof options !== 'object' || options === null) throw new ArgumentError(`progressBar options must be an object, got ${shown(options)}`);
  const { stream, label, total, intervalMs } = options;
  if (stream !== undefined && (typeof stream !== 'object' || stream === null || typeof stream.write !== 'function')) {
    throw new ArgumentError(`progressBar option stream must be a writable stream (with write()), got ${shown(stream)}`);
  }
  if (label !== undefined && typeof label !== 'string') throw new ArgumentError(`progressBar option label must be a string, got ${shown(label)}`);
  if (total !== undefined && !(Number.isSafeInteger(total) && total >= 0)) {
    throw new ArgumentError(`progressBar option total must be a whole number >= 0, got ${shown(total)}`);
  }
  if (intervalMs !== undefined && !(Number.isFinite(intervalMs) && intervalMs >= 0)) {
    throw new ArgumentError(`progressBar option intervalMs must be a number of ms >= 0, got ${shown(intervalMs)}`);
  }
}

function barLine(label: string, progress: Readonly<Progress>, total: number | undefined, perSecond: number, columns: number): string {
  const { done, failed } = progress;
  const running = Math.max(0, progress.dispatched - done - failed);
  const parts = [`${perSecondText(perSecond)}/s`, `${running} running`];
  if (total !== undefined) parts.push(`${Math.max(0, total - done - running)} waiting`);
  parts.push(`${failed} failed`);
  if (total !== undefined) {
    const left = Math.max(0, total - done);
    parts.push(`ETA ${left === 0 ? duration(0) : perSecond > 0 ? duration((left / perSecond) * 1000) : '?'}`);
  }
  const counts = total === undefined ? `${done} tasks` : `${done}/${total}`;
  const rest = `${counts} · ${parts.join(' · ')}`;
  if (total === undefined) return `${label} ${rest}`;
  const share = total === 0 ? 1 : Math.min(1, done / total);
  const percent = `${Math.floor(share * 100)}%`.padStart(4);
  // The bar takes what the text leaves of the line, between 6 and 30 columns.
  const width = Math.max(6, Math.min(30, columns - 1 - label.length - rest.length - percent.length - 5));
  const filled = Math.round(share * width);
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${percent} ${rest}`;
}

function endLine(label: string, progress: Readonly<Progress>, total: number | undefined, elapsedMs: number): string {
  const { done, failed } = progress;
  const counts = total === undefined ? `${done} tasks` : `${done}/${total} tasks`;
  const perSecond = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
  const what = progress.outcome === 'succeeded' ? 'done' : progress.outcome;
  return `${label} ${what}: ${counts} in ${duration(elapsedMs)} · ${perSecondText(perSecond)} tasks/s · ${failed} failed`;
}

function perSecondText(perSecond: number): string {
  if (perSecond >= 10_000) return `${(perSecond / 1000).toFixed(0)}k`;
  if (perSecond >= 100) return perSecond.toFixed(0);
  return perSecond.toFixed(1);
}

/** 850ms, 4.2s, 3m05s, 1h02m. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const whole = Math.round(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor(whole / 60) % 60).padStart(2, '0')}m`;
}
