// The TaskContext an operation receives, through the public API on each
// backend: where the task stands, its signal, its progress.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Retry } from '../../src/index.ts';
import { Increment, Whereabouts } from './fixtures/operations.ts';
import { inProcessBackends } from './fixtures/in-process.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-context-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let markers = 0;
const marker = () => join(dir, `m${markers++}`);

describe.each(inProcessBackends)('TaskContext on %s', (_, start) => {
  it('gives each task its index and its attempt (1, then 2 for the retry); one-argument operations still work', async () => {
    await using runtime = await start();
    const m = marker();
    const seen = await runtime.fanout(Whereabouts, [0, 1, 2].map(() => ({ marker: m })), { retry: Retry.immediate(1) });
    expect(seen).toEqual([0, 1, 2].map((index) => ({ index, attempt: 2, aborted: false })));
    expect(await runtime.fanout(Increment, [1, 2, 3])).toEqual([2, 3, 4]);
  });
});
