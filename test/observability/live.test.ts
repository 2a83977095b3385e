// progressBar(): a directive's live view, drawn on a (fake) terminal from
// onProgress, and Progress's total and outcome that it is drawn from.

import { describe, expect, it } from 'vitest';
import { ArgumentError, IndexedStream, Retry, Runtime, defineOperation, progressBar, type LiveStream, type Progress } from '../../src/index.ts';
import { Busy, FlakyOnce } from './fixtures/operations.ts';

const Boom = defineOperation('live.Boom', (n: number) => {
  if (n === 3) throw new Error('boom at 3');
  return n;
});

/** A terminal that keeps what is written to it. */
function terminal(columns = 160): LiveStream & { writes: string[] } {
  const writes: string[] = [];
  return { isTTY: true, columns, writes, write: (text: string) => writes.push(text) };
}

/** The lines drawn: each write's text after its carriage return, without the clear-to-end code. */
function frames(writes: readonly string[]): string[] {
  return writes.map((text) => text.replace(/^\r/, '').replaceAll('\x1b[K', ''));
}

const BAR = /^weft \[[#-]+\] +(\d+)% (\d+)\/(\d+) · ([\d.]+k?)\/s · (\d+) running · (\d+) waiting · (\d+) failed · ETA (\S+)$/;

describe('progressBar', () => {
  it('draws the bar with counts, rate, running, waiting, failed and ETA, then a last line as the directive succeeds', async () => {
    const runtime = Runtime.local();
    const stream = terminal();
    const inputs = Array.from({ length: 30 }, () => 3);
    const out = await IndexedStream.from(inputs).map(Busy).run(runtime, { onProgress: progressBar({ stream, intervalMs: 0 }) });
    expect(out).toEqual(inputs);
    const lines = frames(stream.writes);
    const bars = lines.slice(0, -1).map((line) => BAR.exec(line));
    expect(bars.length).toBeGreaterThan(1);
    for (const bar of bars) {
      expect(bar).not.toBeNull();
      const [, percent, done, total, , running, waiting, failed] = bar!.map(Number);
      expect(total).toBe(30);
      expect(percent).toBe(Math.floor((done! / 30) * 100));
      expect(done! + running! + waiting!).toBe(30);
      expect(failed).toBe(0);
    }
    // Once tasks have completed, there is a rate and a time left.
    expect(bars.some((bar) => Number(bar![4]!.replace('k', '')) > 0 && /^\d/.test(bar![8]!))).toBe(true);
    expect(stream.writes.at(-1)!.endsWith('\n')).toBe(true);
    expect(lines.at(-1)).toMatch(/^weft done: 30\/30 tasks in [\d.]+m?s · [\d.]+k? tasks\/s · 0 failed\n$/);
    await runtime.close();
  });

  it('counts failed attempts, and its last line says the directive failed', async () => {
    const runtime = Runtime.local({ retry: Retry.immediate(1) });
    const stream = terminal();
    const flaky = await IndexedStream.from([1, 2, 3, 4])
      .map(FlakyOnce)
      .run(runtime, { onProgress: progressBar({ stream, label: 'flaky', intervalMs: 0 }) });
    expect(flaky).toEqual([1, 2, 3, 4]);
    expect(frames(stream.writes).at(-1)).toMatch(/^flaky done: 4\/4 tasks in .* · 4 failed\n$/);

    stream.writes.length = 0;
    const run = IndexedStream.from([1, 2, 3, 4, 5]).map(Boom).run(runtime, { onProgress: progressBar({ stream, intervalMs: 0 }) });
    await expect(run).rejects.toThrow(/boom at 3/);
    expect(frames(stream.writes).at(-1)).toMatch(/^weft failed: \d\/5 tasks in .* · 1 failed\n$/);
    await runtime.close();
  });

  it('says stopped when the consumer of a stream leaves', async () => {
    const runtime = Runtime.local();
    const stream = terminal();
    function* forever(): Generator<number> {
      for (;;) yield 1;
    }
    for await (const [index] of IndexedStream.from(forever()).map(Busy).stream(runtime, { maxInFlight: 4, onProgress: progressBar({ stream, intervalMs: 0 }) })) {
      if (index >= 4) break;
    }
    const lines = frames(stream.writes);
    // The source never ends, so there is no total and no bar: the tasks done, and the rest.
    expect(lines[0]).toMatch(/^weft \d+ tasks · [\d.]+k?\/s · \d+ running · 0 failed$/);
    expect(lines.at(-1)).toMatch(/^weft stopped: \d+ tasks in /);
    await runtime.close();
  });

  it('redraws at most once per interval, always draws the last line, and leaves no timer behind', async () => {
    const runtime = Runtime.local();
    const stream = terminal();
    const onProgress = progressBar({ stream, intervalMs: 60_000 });
    await IndexedStream.from(Array.from({ length: 50 }, () => 1)).map(Busy).run(runtime, { onProgress });
    // The first report draws; the others fall within the interval, and the end replaces the pending redraw.
    expect(frames(stream.writes)).toEqual([expect.stringMatching(BAR), expect.stringMatching(/^weft done: 50\/50 tasks/)]);
    // The same bar draws the next directive afresh.
    await IndexedStream.from([1, 1]).map(Busy).run(runtime, { onProgress });
    expect(stream.writes).toHaveLength(4);
    expect(frames(stream.writes).at(-1)).toMatch(/^weft done: 2\/2 tasks/);
    await runtime.close();
  });

  it('takes the total from its options when the source cannot tell it', async () => {
    const runtime = Runtime.local();
    const stream = terminal();
    function* five(): Generator<number> {
      for (let i = 0; i < 5; i++) yield 1;
    }
    await IndexedStream.from(five()).map(Busy).run(runtime, { onProgress: progressBar({ stream, total: 5, intervalMs: 0 }) });
    for (const line of frames(stream.writes).slice(0, -1)) expect(line).toMatch(BAR);
    expect(frames(stream.writes).at(-1)).toMatch(/^weft done: 5\/5 tasks/);
    await runtime.close();
  });

  it('cuts its lines to the width of the terminal', async () => {
    const runtime = Runtime.local();
    const stream = terminal(40);
    await IndexedStream.from([1, 1, 1]).map(Busy).run(runtime, { onProgress: progressBar({ stream, intervalMs: 0 }) });
    for (const line of frames(stream.writes)) expect(line.replace(/\n$/, '').length).toBeLessThanOrEqual(39);
    expect(frames(stream.writes)[0]).toMatch(/^weft \[/);
    await runtime.close();
  });

  it('writes nothing to a stream that is not a TTY', async () => {
    const runtime = Runtime.local();
    for (const isTTY of [false, undefined]) {
      const writes: string[] = [];
      const stream: LiveStream = { isTTY, columns: 80, write: (text: string) => writes.push(text) };
      const out = await IndexedStream.from([1, 1, 1]).map(Busy).run(runtime, { onProgress: progressBar({ stream, intervalMs: 0 }) });
      expect(out).toEqual([1, 1, 1]);
      expect(writes).toEqual([]);
    }
    await runtime.close();
  });

  it('refuses bad options, naming them', () => {
    expect(() => progressBar({ stream: {} as never })).toThrow(ArgumentError);
    expect(() => progressBar({ stream: {} as never })).toThrow(/progressBar option stream must be a writable stream/);
    expect(() => progressBar({ total: -1 })).toThrow(/progressBar option total must be a whole number >= 0, got -1/);
    expect(() => progressBar({ intervalMs: Number.NaN })).toThrow(/progressBar option intervalMs/);
    expect(() => progressBar({ label: 3 as never })).toThrow(/progressBar option label must be a string/);
  });
});

describe('Progress', () => {
  it('has its total from the start for an array, and from the end of any other source; its last call has the outcome', async () => {
    const runtime = Runtime.local({ retry: Retry.immediate(1) });
    const seen: Progress[] = [];
    await IndexedStream.from([1, 2, 3]).map(FlakyOnce).map(FlakyOnce).run(runtime, { onProgress: (p) => seen.push(p) });
    // Two operations over three inputs: six tasks complete.
    expect(seen.every((p) => p.total === 6)).toBe(true);
    expect(seen.filter((p) => p.outcome !== undefined)).toEqual([seen.at(-1)]);
    expect(seen.at(-1)).toMatchObject({ done: 6, failed: 6, total: 6, outcome: 'succeeded' });

    seen.length = 0;
    function* ten(): Generator<number> {
      for (let i = 0; i < 10; i++) yield 0;
    }
    // Two in flight at most: the first report comes before the source is read to its end.
    await IndexedStream.from(ten()).map(Busy).run(runtime, { maxInFlight: 2, onProgress: (p) => seen.push(p) });
    expect(seen[0]!.total).toBeUndefined();
    expect(seen.at(-1)).toMatchObject({ done: 10, total: 10, outcome: 'succeeded' });
    await runtime.close();
  });
});
