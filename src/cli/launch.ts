// `weft launch -n <processes> -w <threads> <script> [args]`: a local cluster
// of one script on 127.0.0.1. Each process gets timely's flags and a
// generated hostfile; output lines are prefixed with the process index;
// SIGINT/SIGTERM are forwarded. A process that fails does not stop the
// others: the program decides. Fail-stop (the default) stops them by itself
// (each fails with a PeerError naming the lost process); a program that
// continues past losses (onPeerLoss 'continue', Runtime.cluster's serving
// processes) runs on, and the launch succeeds if every process that
// outlived the loss exits 0. With --restart n, a process that fails is
// started again with the same command line, up to n times each: a program
// that continues past losses takes it back under its index (docs/cluster.md).
// With --spare k the last k processes are spares: the hostfile marks them,
// launch starts the others and prints, per spare, the command that starts
// it; a spare started by it while the cluster runs joins (docs/cluster.md).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { checkTls, tlsFromDir } from '../transport/tls.ts';
import { LAUNCHED_ENV, launchedValue } from '../allocator/launched.ts';
import { freePorts } from './ports.ts';
import { ConfigError } from '../errors.ts';
import { MAX_THREADS } from '../allocator/config.ts';
import { mustRegisterTsx, tsxEntry, tsxFlags, TYPESCRIPT_FILE } from '../typescript.ts';

export interface LaunchOptions {
  processes: number;
  threads: number;
  script: string;
  args: string[];
  /** Mutual TLS: a folder made by `weft keys`, passed to every process as --tls-dir. */
  tlsDir?: string | undefined;
  /** How many of the processes (the last ones) are spares, started by hand while the cluster runs. Default 0. */
  spares?: number | undefined;
  /** How many times each process that fails is started again (same command line). Default 0. */
  restarts?: number | undefined;
  /** Where to write prefixed output; defaults to the process's own streams. */
  out?: NodeJS.WritableStream;
  err?: NodeJS.WritableStream;
}

const STOP_GRACE_MS = 3_000;

// A TypeScript script runs as typescript.ts says: under the tsx weft launch
// runs under, or Node's own type stripping, or an installed tsx.
function nodeArgs(script: string): string[] {
  if (!TYPESCRIPT_FILE.test(script)) return [];
  const inherited = tsxFlags();
  if (inherited.length > 0) return inherited;
  if (!mustRegisterTsx(`the script ${script}`)) return [];
  return ['--import', pathToFileURL(tsxEntry(`the script ${script}`)).href];
}

/** A command line as a shell reads it back. */
function shellLine(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
}

/**
 * Resolves to the exit code of the cluster (spares are not waited for): 0
 * when every started process succeeded, or when some were lost and every
 * process that outlived the last loss succeeded (the program survived
 * them); else the code of the first survivor to fail.
 */
export async function launch(o: LaunchOptions): Promise<number> {
  const out = o.out ?? process.stdout;
  const err = o.err ?? process.stderr;
  const spares = o.spares ?? 0;
  if (!Number.isInteger(spares) || spares < 0 || spares >= o.processes) {
    throw new ConfigError(`--spare ${spares} must be from 0 to ${o.processes - 1} for ${o.processes} processes (process 0 is never a spare)`);
  }
  // Config's bound, checked once here: past it every process would fail alike as it starts, each with a stack trace.
  if (o.threads > MAX_THREADS) throw new ConfigError(`-w ${o.threads}: threads are at most ${MAX_THREADS} per process (rings grow as threads^2); use more processes (-n)`);
  const restarts = o.restarts ?? 0;
  if (!Number.isInteger(restarts) || restarts < 0) throw new ConfigError(`--restart ${restarts} must be a whole number of restarts per process`);
  const started = o.processes - spares;
  const script = resolve(o.script);
  // Node's own lookup for a main script, done once here: a missing script is
  // one line, not a stack trace from each process.
  try {
    createRequire(import.meta.url).resolve(script);
  } catch {
    throw new ConfigError(`no script ${o.script} (${script})`);
  }
  // Once, before anything starts: a .ts that needs a tsx nobody installed is one error, not one per process.
  const preload = nodeArgs(script);
  // Every process's files are checked before any starts: one clear error, not one per process.
  const tls = o.tlsDir !== undefined ? ['--tls-dir', resolve(o.tlsDir)] : [];
  for (let i = 0; o.tlsDir !== undefined && i < o.processes; i++) checkTls(tlsFromDir(tls[1]!, i), i);
  const dir = mkdtempSync(join(tmpdir(), 'weft-launch-'));
  const hostfile = join(dir, 'hosts');
  const ports = await freePorts(o.processes);
  writeFileSync(hostfile, ports.map((p, i) => `127.0.0.1:${p}${i >= started ? ' spare' : ''}\n`).join(''));
  const argvOf = (i: number): string[] => [...preload, script, '-n', String(o.processes), '-p', String(i), '-w', String(o.threads), '-h', hostfile, ...tls, ...o.args];
  const children: ChildProcess[] = [];
  /** The first failure of a process that outlived a loss: the cluster's exit code. */
  let failed: number | undefined;
  const lost: number[] = [];
  let remaining = started;

  const stopAll = (signal: NodeJS.Signals): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
    setTimeout(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }, STOP_GRACE_MS).unref();
  };
  /** Stopped by a signal: nothing is restarted. */
  let stopping = false;
  const forward = (signal: NodeJS.Signals): void => {
    stopping = true;
    stopAll(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);

  const spareNote = spares > 0 ? ` (the last ${spares} spare)` : '';
  err.write(`weft: launching ${o.processes} processes${spareNote} x ${o.threads} threads of ${o.script}${o.tlsDir !== undefined ? ' with mutual TLS' : ''}\n`);
  for (let i = started; i < o.processes; i++) err.write(`weft: spare process ${i} joins the running cluster when started with: ${shellLine([process.execPath, ...argvOf(i)])}\n`);
  const restarted = new Array<number>(o.processes).fill(0);
  const done = new Promise<number>((resolveDone) => {
    const start = (i: number): void => {
      const child = spawn(process.execPath, argvOf(i), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, [LAUNCHED_ENV]: launchedValue(i, o.processes) } });
      children[i] = child;
      createInterface({ input: child.stdout! }).on('line', (l) => out.write(`[${i}] ${l}\n`));
      createInterface({ input: child.stderr! }).on('line', (l) => err.write(`[${i}] ${l}\n`));
      child.on('exit', (code, signal) => {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        // Only while others run: a restarted process joins a running cluster, never starts one alone.
        if (code !== 0 && !stopping && restarted[i]! < restarts && remaining > 1) {
          restarted[i]!++;
          err.write(`weft: process ${i} ${how}; starting it again (restart ${restarted[i]} of ${restarts})\n`);
          start(i);
          return;
        }
        remaining--;
        if (code !== 0) {
          // Lost while others run: whether that fails the cluster is theirs to say.
          if (remaining > 0) {
            lost.push(i);
            err.write(`weft: process ${i} ${how}; the others run on (a fail-stop program stops them, one that continues past losses does not)\n`);
          } else {
            err.write(`weft: process ${i} ${how}\n`);
            failed = code ?? 1;
          }
        }
        if (remaining > 0) return;
        if (failed === undefined && lost.length > 0) err.write(`weft: the program survived the loss of process(es) ${lost.join(', ')}: every other process exited 0\n`);
        resolveDone(failed ?? 0);
      });
    };
    for (let i = 0; i < started; i++) start(i);
  });
  try {
    return await done;
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
    rmSync(dir, { recursive: true, force: true });
  }
}
