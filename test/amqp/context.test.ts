// The TaskContext over AMQP, through the public API with worker processes:
// where a task stands, its cancellation, its progress.

import { describe, expect, it } from 'vitest';
import { Retry, type Progress } from '../../src/runtime/index.ts';
import { Reports, Whereabouts } from './fixtures/operations.ts';
import { brokerAvailable, servingCluster } from './helpers.ts';

const available = brokerAvailable('test/amqp/context.test.ts');

describe.runIf(available)('TaskContext on Runtime.amqp', () => {
  const cluster = servingCluster('context');

  it('gives each task its index and its attempt (1, then 2 for the retry)', async () => {
    const seen = await cluster.runtime.fanout(Whereabouts, [null, null, null], { retry: Retry.immediate(1) });
    expect(seen).toEqual([0, 1, 2].map((index) => ({ index, attempt: 2 })));
  });

  it('brings each ctx.progress detail to onProgress with its task index', async () => {
    const reports: NonNullable<Progress['task']>[] = [];
    const inputs = [10, 11, 12, 13, 14];
    const outputs = await cluster.runtime.fanout(Reports, inputs, {
      onProgress: (progress) => {
        if (progress.task !== undefined) reports.push(progress.task);
      },
    });
    expect(outputs).toEqual(inputs);
    expect(reports.map(({ index, attempt, detail }) => [index, attempt, detail]).sort()).toEqual(inputs.map((n, index) => [index, 1, { n }]).sort());
  });
});
