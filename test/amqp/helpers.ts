// Shared by the AMQP tests: the run's own broker, unique names per test,
// worker processes, the broker's control tool, and a lock that keeps AMQP
// test files of one run from running at the same time (one of them restarts
// the broker under everyone's feet).
//
// The broker is a RabbitMQ node this run started (test/setup/rabbitmq.ts):
// the tests never touch a broker they did not start. Without rabbitmq-server
// the suites are skipped (globalSetup printed how to install it), except when
// CI is set: then they fail, since in CI they must run.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connect, type ChannelModel } from 'amqplib';
import { afterAll, beforeAll, expect, inject } from 'vitest';
import { Runtime } from '../../src/runtime/index.ts';
import { namesOf } from '../../src/runtime/backends/amqp/index.ts';
import { lock, startedNode, type RabbitmqNode } from '../setup/rabbitmq-node.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const OPERATIONS = fileURLToPath(new URL('./fixtures/operations.ts', import.meta.url));

const setup = inject('weftRabbitmq');
const node: RabbitmqNode | undefined = 'dir' in setup ? await startedNode(setup.dir) : undefined;

/** The run's own broker; empty when there is none (the suites are skipped then). */
export const AMQP_URL = node?.url ?? '';

/**
 * True when the AMQP tests can run. Without rabbitmq-server: false, or
 * throws when CI is set.
 */
export function brokerAvailable(suite: string): boolean {
  if (node !== undefined) return true;
  if (process.env.CI) throw new Error(`${suite}: ${'missing' in setup ? setup.missing : 'no broker'}. In CI the AMQP tests must run.`);
  return false;
}

/** The integers from `from` to `to`, both included. */
export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The lines an operation appended to `log` so far: none while it does not exist, or exists but is still empty. */
export const logLines = (log: string): string[] => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((line) => line !== '') : []);

let prefixes = 0;
/** A prefix no other test (or earlier run) uses: its own queues and exchanges. */
export function uniquePrefix(name: string): string {
  return `weft-test.${name}.${process.pid}.${Date.now().toString(36)}.${prefixes++}`;
}

/** Removes what a prefix put on the broker. */
export async function deleteTopology(prefix: string): Promise<void> {
  const names = namesOf(prefix);
  const connection = await connect(AMQP_URL);
  try {
    const channel = await connection.createChannel();
    await channel.deleteQueue(names.taskQueue);
    await channel.deleteQueue(names.deadQueue);
    await channel.deleteExchange(names.taskExchange);
    await channel.deleteExchange(names.deadExchange);
    await channel.deleteExchange(names.controlExchange);
  } finally {
    await connection.close();
  }
}

/** A plain amqplib connection for inspecting queues; closed by the caller. */
export function rawConnection(): Promise<ChannelModel> {
  return connect(AMQP_URL);
}

/** Resolves once the task queue of `prefix` is empty: every task message has reached a worker and been acked. */
export async function taskQueueDrained(prefix: string): Promise<void> {
  const connection = await rawConnection();
  try {
    const channel = await connection.createChannel();
    await expect.poll(async () => (await channel.checkQueue(namesOf(prefix).taskQueue)).messageCount, { timeout: 20_000 }).toBe(0);
  } finally {
    await connection.close();
  }
}

/** Runs rabbitmqctl against the run's own node, resolving with its output. */
export function rabbitmqctl(...args: string[]): Promise<string> {
  return node!.ctl(...args);
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly stderr: string[];
  /** Resolves once the worker says it is serving; rejects if it exits first. */
  readonly serving: Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `weft worker --amqp` as a child process, through bin/weft.mjs as users run it. */
export function startWorker(prefix: string, extra: string[] = []): WorkerProcess {
  const child = spawn(
    process.execPath,
    [join(ROOT, 'bin/weft.mjs'), 'worker', '--amqp', AMQP_URL, '--operations', OPERATIONS, '--prefix', prefix, ...extra],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const stderr: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const serving = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderr.push(line);
      if (/serving /.test(line)) resolve();
    });
    void exited.then(({ code, signal }) => reject(new Error(`worker exited (${code ?? signal}) before serving:\n${stderr.join('\n')}`)));
  });
  serving.catch(() => {});
  return { child, stderr, serving, exited };
}

/** Stops workers: SIGTERM, and SIGKILL for any still running 10 s later (one stuck in a task). */
export async function stopWorkers(workers: readonly WorkerProcess[]): Promise<void> {
  const running = workers.filter((worker) => worker.child.exitCode === null && worker.child.signalCode === null);
  for (const worker of running) worker.child.kill('SIGTERM');
  const force = setTimeout(() => {
    for (const worker of running) if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
  }, 10_000);
  await Promise.all(running.map((worker) => worker.exited));
  clearTimeout(force);
}

// --------------------------------------------------------------- session

export interface BrokerSession {
  /** A unique prefix (see uniquePrefix) whose topology is deleted after the suite. */
  prefix(name: string): string;
  /** startWorker, the worker stopped after the suite. */
  worker(prefix: string, extra?: string[]): WorkerProcess;
}

export interface BrokerSessionOptions {
  /** Runs in the beforeAll, once the lock is held. */
  setup?: (session: BrokerSession) => Promise<void>;
  /** Runs first in the afterAll, before the workers are stopped. */
  teardown?: () => Promise<unknown>;
  /** The afterAll's timeout; the configured hookTimeout when unset. */
  teardownTimeout?: number;
}

/**
 * Registers the suite's beforeAll (take the broker lock, then `setup`) and
 * afterAll (`teardown`, stop every worker started through the session,
 * delete the topology of every prefix it handed out, unlock).
 */
export function brokerSession(options: BrokerSessionOptions = {}): BrokerSession {
  let unlock: (() => void) | undefined;
  const prefixes: string[] = [];
  const workers: WorkerProcess[] = [];
  const session: BrokerSession = {
    prefix(name) {
      const prefix = uniquePrefix(name);
      prefixes.push(prefix);
      return prefix;
    },
    worker(prefix, extra = []) {
      const started = startWorker(prefix, extra);
      workers.push(started);
      return started;
    },
  };

  beforeAll(async () => {
    unlock = await lockBroker();
    await options.setup?.(session);
    // The lock may wait for the other fork's AMQP files, one or two of them.
  }, 600_000);

  afterAll(async () => {
    await options.teardown?.();
    await stopWorkers(workers);
    for (const prefix of prefixes) await deleteTopology(prefix).catch(() => {});
    unlock?.();
  }, options.teardownTimeout);

  return session;
}

export interface ServingCluster {
  readonly prefix: string;
  /** Set in the beforeAll. */
  readonly runtime: Runtime;
  /** Set in the beforeAll. */
  readonly workers: readonly WorkerProcess[];
}

/**
 * A brokerSession with, once the lock is held, a Runtime.amqp on one fresh
 * prefix and two worker processes serving it; the runtime is closed first
 * in the afterAll.
 */
export function servingCluster(name: string): ServingCluster {
  let runtime: Runtime | undefined;
  let workers: WorkerProcess[] = [];
  const session = brokerSession({
    setup: async () => {
      runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
      workers = [session.worker(prefix), session.worker(prefix)];
      await Promise.all(workers.map((worker) => worker.serving));
    },
    teardown: async () => {
      await runtime?.close();
    },
  });
  const prefix = session.prefix(name);
  return {
    prefix,
    get runtime() {
      return runtime!;
    },
    get workers() {
      return workers;
    },
  };
}

// ------------------------------------------------------------------ lock

/** Takes this run's AMQP test lock (other runs have brokers of their own). */
export function lockBroker(): Promise<() => void> {
  return lock(join('dir' in setup ? setup.dir : '', 'tests.lock'));
}
