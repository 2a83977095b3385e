// A directive's trace context travels on the first of its tasks only; the
// coordinator's Dispatcher and each worker's TaskBatches keep it by key, a
// bounded number of directives. A long-running directive keeps it however
// many shorter directives come and go meanwhile.

import { afterEach, describe, expect, it } from 'vitest';
import { Dispatcher } from '../../src/runtime/channel-protocol/dispatcher.ts';
import { TaskBatches, taskChannel, type TaskBatchMessage, type TraceCarrier } from '../../src/runtime/observability/channels.ts';
import type { Task } from '../../src/runtime/core/task.ts';

const task = (key: string, index: number, tc?: TraceCarrier): Task => ({ op: 'op', input: index, key, index, stage: 0, attempt: 0, ...(tc === undefined ? {} : { tc }) });
const LONG = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
/** Far more directives than either side keeps. */
const OTHERS = 1000;

describe('trace context of a long-running directive', () => {
  it('the dispatcher still puts it on the directive\'s tasks after many shorter traced directives came and went', () => {
    const sent: Task[] = [];
    // Room for every task: none is answered here.
    const dispatcher = new Dispatcher(1, (_worker, tasks) => sent.push(...tasks), 64, 4 * OTHERS);
    dispatcher.setReady(0, true);
    dispatcher.enqueue([task('long', 0, LONG)]);
    for (let k = 0; k < OTHERS; k++) {
      dispatcher.enqueue([task(`short-${k}`, 0, { traceparent: `short ${k}` })]);
      dispatcher.enqueue([task('long', k + 1)]);
    }
    const long = sent.filter((t) => t.key === 'long');
    expect(long.length).toBe(OTHERS + 1);
    expect(long.filter((t) => t.tc?.traceparent !== LONG.traceparent).map((t) => t.index)).toEqual([]);
  });

  const unsubscribe: (() => void)[] = [];
  afterEach(() => unsubscribe.splice(0).forEach((f) => f()));

  it('a worker still reports it on the directive\'s task batches after many shorter traced directives ran between them', () => {
    const seen: TaskBatchMessage[] = [];
    const handlers = { start: (m: unknown) => seen.push(m as TaskBatchMessage), end: () => {}, asyncStart: () => {}, asyncEnd: () => {}, error: () => {} };
    taskChannel.subscribe(handlers);
    unsubscribe.push(() => taskChannel.unsubscribe(handlers));
    const batches = new TaskBatches(0);
    batches.before(task('long', 0, LONG));
    for (let k = 0; k < OTHERS; k++) {
      batches.before(task(`short-${k}`, 0, { traceparent: `short ${k}` }));
      batches.before(task('long', k + 1));
    }
    batches.end();
    // Batches alternate: the long directive, a short one, the long one...
    const long = seen.filter((_, i) => i % 2 === 0);
    expect(long.length).toBe(OTHERS + 1);
    expect(long.filter((m) => m.traceContext?.traceparent !== LONG.traceparent).length).toBe(0);
  });
});
