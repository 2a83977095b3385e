import { defineConfig } from 'vitest/config';

// Worker threads and child processes do the real work in these tests; two
// files at a time keeps a 2-core machine from starving the timers they use.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds dist/ once: the closure tests run a plain .js program against it.
    // The AMQP tests' own RabbitMQ node: see test/setup/rabbitmq.ts.
    globalSetup: ['test/setup/build.ts', 'test/setup/rabbitmq.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
