// Servers the peer benchmarks talk to, started by the bench on a free port of
// 127.0.0.1 and stopped by it: redis-server (BullMQ), nats-server (NATS) and
// a RabbitMQ node of its own (the one the tests use, test/setup). A server
// that is not installed yields a reason to print instead of rows.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePorts } from '../src/cli/ports.ts';

export interface Service {
  readonly port: number;
  stop(): Promise<void>;
}

export function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, command)));
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Runs `command` with the args `argsFor(port, dir)` until it accepts connections on the port. */
async function serve(command: string, argsFor: (port: number, dir: string) => string[]): Promise<Service> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `weft-bench-${command}-`));
  const child: ChildProcess = spawn(command, argsFor(port, dir), { cwd: dir, stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 30_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${command} did not start on 127.0.0.1:${port}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    port,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const missing = (command: string, pkg: string): string =>
  `${command} is not installed (Debian/Ubuntu: sudo apt-get install ${pkg}), skipped`;

/** redis-server without persistence, or why not. */
export function redis(): Promise<Service> | string {
  if (!onPath('redis-server')) return missing('redis-server', 'redis-server');
  return serve('redis-server', (port, dir) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]);
}

/** nats-server (core NATS, no JetStream), or why not. */
export function nats(): Promise<Service> | string {
  if (!onPath('nats-server')) return missing('nats-server', 'nats-server');
  return serve('nats-server', (port) => ['-a', '127.0.0.1', '-p', String(port)]);
}
