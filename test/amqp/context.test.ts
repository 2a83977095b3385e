// The TaskContext over AMQP, through the public API with worker processes:
// where a task stands, its cancellation, its progress.

import { describe, expect, it } from 'vitest';
import { Retry } from '../../src/runtime/index.ts';
import { Whereabouts } from './fixtures/operations.ts';
import { brokerAvailable, servingCluster } from './helpers.ts';

const available = brokerAvailable('test/amqp/context.test.ts');

describe.runIf(available)('TaskContext on Runtime.amqp', () => {
  const cluster = servingCluster('context');

  it('gives each task its index and its attempt (1, then 2 for the retry)', async () => {
    const seen = await cluster.runtime.fanout(Whereabouts, [null, null, null], { retry: Retry.immediate(1) });
    expect(seen).toEqual([0, 1, 2].map((index) => ({ index, attempt: 2 })));
  });
});
