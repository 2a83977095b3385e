// vitest globalSetup: a directory for the run's own RabbitMQ node (started by
// the first AMQP test file that needs it, see rabbitmq-node.ts) and, at the
// end of the run, the node stopped and the directory removed. Without
// rabbitmq-server on PATH: one line saying how to install it, and the AMQP
// suites skip while every other test runs.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { INSTALL_HINT, rabbitmqScripts, stopNode } from './rabbitmq-node.ts';

export default function setup(project: TestProject): (() => Promise<void>) | undefined {
  if (rabbitmqScripts() === undefined) {
    console.warn(INSTALL_HINT);
    project.provide('weftRabbitmq', { missing: INSTALL_HINT });
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'weft-rabbitmq-'));
  project.provide('weftRabbitmq', { dir });
  return () => stopNode(dir);
}
