// Running cluster programs as child processes, event-driven: tests wait for
// lines the programs print and for their exits, never for time to pass.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const PROGRAM = fileURLToPath(new URL('./fixtures/program.ts', import.meta.url));

import { freePorts } from '../../src/cli/ports.ts';

export { freePorts };

/** A fresh folder with a hostfile for `ports`, the processes in `spares` marked spare. */
export function hostfile(ports: number[], spares: readonly number[] = []): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'weft-test-'));
  const path = join(dir, 'hosts');
  writeFileSync(path, ports.map((p, i) => `127.0.0.1:${p}${spares.includes(i) ? ' spare' : ''}\n`).join(''));
  return { dir, path };
}

export interface Running {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Resolves with the first stdout line matching, rejects if the process exits first. */
  line(pattern: RegExp): Promise<string>;
  /** Resolves when stderr has a line matching (or the process exited: check the result). */
  errLine(pattern: RegExp): Promise<string | undefined>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** A process's output, for assertion messages. */
export const detail = (p: Running): string => `stdout:\n${p.stdout.join('\n')}\nstderr:\n${p.stderr.join('\n')}`;

/** Runs a script under tsx in its own process. */
export function run(script: string, args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters: { stream: string[]; pattern: RegExp; resolve: (l: string | undefined) => void; reject?: (e: Error) => void }[] = [];
  const feed = (stream: string[]) => (l: string): void => {
    stream.push(l);
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!;
      if (w.stream === stream && w.pattern.test(l)) {
        waiters.splice(i, 1);
        w.resolve(l);
      }
    }
  };
  const out = createInterface({ input: child.stdout! });
  const err = createInterface({ input: child.stderr! });
  out.on('line', feed(stdout));
  err.on('line', feed(stderr));
  // 'close' comes after the streams ended, so every line has been seen.
  let closed = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => {
    child.on('close', (code, signal) => {
      closed = true;
      const at = performance.now();
      for (const w of waiters.splice(0)) {
        if (w.reject) w.reject(new Error(`process exited (${code ?? signal}) before printing ${w.pattern}\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`));
        else w.resolve(undefined);
      }
      resolve({ code, signal, at });
    });
  });
  const waitFor = (stream: string[], pattern: RegExp, strict: boolean): Promise<string | undefined> => {
    const seen = stream.find((l) => pattern.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    if (closed) {
      return strict ? Promise.reject(new Error(`process already exited before printing ${pattern}`)) : Promise.resolve(undefined);
    }
    return new Promise((resolve, reject) => waiters.push({ stream, pattern, resolve, ...(strict ? { reject } : {}) }));
  };
  return {
    child, stdout, stderr, exited,
    line: (p) => waitFor(stdout, p, true) as Promise<string>,
    errLine: (p) => waitFor(stderr, p, false),
  };
}

/** Starts process i of n of the fixture program in `mode`. */
export function runProcess(i: number, n: number, threads: number, hosts: string, mode: string[], env: NodeJS.ProcessEnv = {}): Running {
  return run(PROGRAM, ['-n', String(n), '-p', String(i), '-w', String(threads), '-h', hosts, ...mode], env);
}

/** Kills whatever is still running (test cleanup). */
export function killAll(list: Running[]): void {
  for (const r of list) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
}

/**
 * A cluster of `n` processes of one thread each in the fixture's gated mode,
 * none started yet: `start(i)` starts process i (into `started`, for the
 * test's cleanup); `completes()` lets worker 0 send 1..1000 to everyone and
 * checks that every process exits 0 with the sum; `remove()` deletes its
 * hostfile folder.
 */
export async function gatedCluster(n: number, env: NodeJS.ProcessEnv, started: Running[]) {
  const ports = await freePorts(n);
  const hosts = hostfile(ports);
  const go = join(hosts.dir, 'go');
  const ps: Running[] = [];
  return {
    ports,
    start(i: number): Running {
      const p = runProcess(i, n, 1, hosts.path, ['gated', go], env);
      started.push(p);
      ps[i] = p;
      return p;
    },
    async completes(): Promise<void> {
      writeFileSync(go, '');
      for (const p of ps) {
        const { code } = await p.exited;
        const detail = `stdout:\n${p.stdout.join('\n')}\nstderr:\n${p.stderr.join('\n')}`;
        expect(code, detail).toBe(0);
        expect(p.stdout, detail).toContain('result [500500]');
      }
    },
    remove(): void {
      rmSync(hosts.dir, { recursive: true, force: true });
    },
  };
}

/** The refusals one process logged: the lines at once plus the counts of its summary lines. */
export function refusalsLogged(stderr: string[]): number {
  let n = 0;
  for (const l of stderr) {
    if (/refused a connection from/.test(l)) n++;
    const m = /refused (\d+) more connections?/.exec(l);
    if (m) n += Number(m[1]);
  }
  return n;
}
