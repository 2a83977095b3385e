// The `weft` command line. Each command imports its own code when it runs,
// so that one command does not load what another needs (node-forge for
// `keys`, the AMQP backend for `worker`: optional peer dependencies).

import { existsSync, readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, WeftError } from '../errors.ts';
import { importOptional } from '../optional.ts';
import { clusterFlags } from '../allocator/cluster-flags.ts';
import type { WorkerCommandOptions } from './worker.ts';

function natural(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`expected a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError(`expected a TCP port (0 for any free one, up to 65535), got ${JSON.stringify(value)}`);
  return n;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

// The same path from src/cli and from dist/cli: the package root's manifest.
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

// Positional options: what follows a launched script is the script's, so an
// option before it that launch does not know is a mistake to report, not a
// script to start (`weft launch -n 2 --bogus app.js` once ran `--bogus`).
const program = new Command('weft').description('parallel and distributed programs for Node.js').version(version, '-V, --version').enablePositionalOptions();

program
  .command('launch')
  .description('run <script> as a local cluster on 127.0.0.1')
  .requiredOption('-n, --processes <n>', 'processes', positive)
  .option('-w, --threads <n>', 'worker threads per process', positive, 1)
  .argument('<script>', 'a .js or .ts program that calls initialize(Config.fromArgs(...).config, ...)')
  .option('--tls-dir <dir>', 'mutual TLS between the processes, with the files `weft keys <dir>` made')
  .option('--spare <k>', 'the last k processes are spares: not started, each joins the running cluster when started with the command printed (add --replaces <i> to it to take lost process i\'s place)', natural, 0)
  .option('--on-peer-loss <abort|continue>', 'what losing a process does to the others (Config.cluster onPeerLoss; default abort, or WEFT_ON_PEER_LOSS)')
  .option('--heartbeat-timeout <ms>', 'silence after which a process is presumed dead (heartbeatTimeoutMs; default 10000, or WEFT_HEARTBEAT_TIMEOUT_MS)')
  .option('--connect-timeout <ms>', 'how long each process tries to reach the others (connectTimeoutMs; default 30000, or WEFT_CONNECT_TIMEOUT_MS)')
  .option('--restart <n>', 'start a process that fails again, up to n times each (a program that continues past losses takes it back)', natural, 0)
  .argument('[args...]', 'passed on to the script, options included')
  .passThroughOptions()
  .action(async (script: string, args: string[], o: { processes: number; threads: number; tlsDir?: string; spare: number; restart: number; onPeerLoss?: string; heartbeatTimeout?: string; connectTimeout?: string }) => {
    const { launch } = await import('./launch.ts');
    try {
      const flags = clusterFlags({ onPeerLoss: o.onPeerLoss, heartbeatTimeoutMs: o.heartbeatTimeout, connectTimeoutMs: o.connectTimeout });
      process.exitCode = await launch({ processes: o.processes, threads: o.threads, script, args: [...flags, ...args], tlsDir: o.tlsDir, spares: o.spare, restarts: o.restart });
    } catch (error) {
      // A bad flag or script, a tsx the script needs and nobody installed: one line.
      if (!(error instanceof WeftError)) throw error;
      console.error(`weft launch: ${error.message}`);
      process.exitCode = 2;
    }
  });

const keys = program
  .command('keys')
  .description('make a CA and, per process, a key and certificate for mutual TLS (weft launch --tls-dir, Config.fromArgs --tls-dir, WEFT_TLS_DIR)')
  .option('-n, --processes <n>', 'processes (required)', positive)
  .option('--days <n>', 'how long the certificates are valid', positive, 825)
  .argument('<dir>', 'folder to write ca.crt, ca.key, process-<i>.crt and process-<i>.key into (keep ca.key safe: it makes members)')
  .action(async (dir: string, o: { processes?: number; days: number }) => {
    try {
      // Not a required option: `weft keys revoke` goes through this command too.
      if (o.processes === undefined) throw new ConfigError('weft keys: -n, --processes <n> is required');
      const { makeKeys } = await importOptional('node-forge', 'weft keys', () => import('./keys.ts'));
      for (const path of makeKeys({ dir, processes: o.processes, days: o.days })) console.log(path);
    } catch (error) {
      console.error((error as Error).message);
      process.exitCode = 1;
    }
  });

keys
  .command('revoke')
  .description('revoke process <i>\'s certificate: adds it to crl.pem in <dir>, which every process reading <dir> loads; the others keep their keys')
  .argument('<dir>', 'a folder made by `weft keys` (needs ca.key)')
  .argument('<i>', 'the process whose certificate (process-<i>.crt) is revoked', natural)
  .action(async (dir: string, i: number) => {
    try {
      const { revoke } = await importOptional('node-forge', 'weft keys revoke', () => import('./keys.ts'));
      console.log(revoke(dir, i));
    } catch (error) {
      console.error((error as Error).message);
      process.exitCode = 1;
    }
  });

program
  .command('worker')
  .description('serve tasks from an AMQP broker (RabbitMQ) for Runtime.amqp orchestrators')
  .requiredOption('--amqp <url>', 'broker URL, amqp://user:password@host:port/vhost')
  .requiredOption('--operations <modules...>', 'module(s) whose defineOperation calls this worker serves (.js, or .ts: stripped by Node where it can, else through tsx)')
  .option('--prefix <prefix>', 'queue and exchange name prefix, as given to Runtime.amqp', 'weft')
  .option('--threads <n>', 'worker threads that run the tasks (default: the available parallelism)', positive)
  .option('--prefetch <n>', 'task batches delivered and not yet answered (default: 4 per thread, at least 8)', positive)
  .option('--cancel-grace <ms>', 'how long a cancelled task may run on before its thread is replaced, unless its run sets cancelGraceMs', positive, 1000)
  .option('--delivery-limit <n>', 'deliveries of a task before it is dead-lettered (must match the orchestrator)', positive, 3)
  .option('--connect-timeout <ms>', 'give up if the broker cannot be reached for this long', positive, 30_000)
  .option('-q, --quiet', 'no connection news on stderr')
  .option('--metrics-port <port>', 'serve this worker\'s metrics in the Prometheus text format at /metrics on this port (0: any free one, logged)', port)
  .action(async (o: WorkerCommandOptions) => {
    try {
      const { worker } = await import('./worker.ts');
      process.exitCode = await worker(o);
    } catch (error) {
      // What weft refuses (a missing amqplib, operations that cannot be
      // imported, a URL that is not amqp://, a broker out of reach): one
      // line, not a stack. Anything else is a bug, and keeps its stack.
      if (!(error instanceof WeftError)) throw error;
      console.error(`weft worker: ${error.message}`);
      process.exitCode = 2;
    }
  });

// The suites are TypeScript kept beside the sources, not in the package:
// an installed weft has no `bench` command.
const suites = new URL('../../bench/run.ts', import.meta.url);
if (existsSync(suites)) {
  program
    .command('bench')
    .description('run the benchmarks (weft beside postMessage, raw sockets and piscina)')
    .action(async () => {
      const { register } = await importOptional('tsx', 'weft bench', () => import('tsx/esm/api'));
      register();
      const { main } = (await import(suites.href)) as { main: () => Promise<void> };
      await main();
    });
}

await program.parseAsync(process.argv);
