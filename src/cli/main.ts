// The `weft` command line.

import { existsSync, readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { launch } from './launch.ts';
import { makeKeys } from './keys.ts';
import { ConfigError } from '../errors.ts';
import { worker, type WorkerCommandOptions } from './worker.ts';

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

const program = new Command('weft').description('parallel and distributed programs for Node.js').version(version, '-V, --version');

program
  .command('launch')
  .description('run <script> as a local cluster on 127.0.0.1')
  .requiredOption('-n, --processes <n>', 'processes', positive)
  .option('-w, --threads <n>', 'worker threads per process', positive, 1)
  .argument('<script>', 'a .js or .ts program that calls initialize(Config.fromArgs(...).config, ...)')
  .option('--tls-dir <dir>', 'mutual TLS between the processes, with the files `weft keys <dir>` made')
  .option('--spare <k>', 'the last k processes are spares: not started, each joins the running cluster when started with the command printed', natural, 0)
  .argument('[args...]', 'passed on to the script')
  .allowUnknownOption()
  .action(async (script: string, args: string[], o: { processes: number; threads: number; tlsDir?: string; spare: number }) => {
    try {
      process.exitCode = await launch({ processes: o.processes, threads: o.threads, script, args, tlsDir: o.tlsDir, spares: o.spare });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      console.error(`weft launch: ${error.message}`);
      process.exitCode = 2;
    }
  });

program
  .command('keys')
  .description('make a CA and, per process, a key and certificate for mutual TLS (weft launch --tls-dir, Config.fromArgs --tls-dir, WEFT_TLS_DIR)')
  .requiredOption('-n, --processes <n>', 'processes', positive)
  .option('--days <n>', 'how long the certificates are valid', positive, 825)
  .argument('<dir>', 'folder to write ca.crt, ca.key, process-<i>.crt and process-<i>.key into (keep ca.key safe: it makes members)')
  .action((dir: string, o: { processes: number; days: number }) => {
    try {
      for (const path of makeKeys({ dir, processes: o.processes, days: o.days })) console.log(path);
    } catch (error) {
      console.error((error as Error).message);
      process.exitCode = 1;
    }
  });

program
  .command('worker')
  .description('serve tasks from an AMQP broker (RabbitMQ) for Runtime.amqp orchestrators')
  .requiredOption('--amqp <url>', 'broker URL, amqp://user:password@host:port/vhost')
  .requiredOption('--operations <modules...>', 'module(s) whose defineOperation calls this worker serves (.js, or .ts through tsx)')
  .option('--prefix <prefix>', 'queue and exchange name prefix, as given to Runtime.amqp', 'weft')
  .option('--threads <n>', 'worker threads that run the tasks (default: the available parallelism)', positive)
  .option('--prefetch <n>', 'task batches delivered and not yet answered (default: 4 per thread, at least 8)', positive)
  .option('--cancel-grace <ms>', 'how long a cancelled task may run on before its thread is replaced, unless its run sets cancelGraceMs', positive, 1000)
  .option('--delivery-limit <n>', 'deliveries of a task before it is dead-lettered (must match the orchestrator)', positive, 3)
  .option('--connect-timeout <ms>', 'give up if the broker cannot be reached for this long', positive, 30_000)
  .option('-q, --quiet', 'no connection news on stderr')
  .option('--metrics-port <port>', 'serve this worker\'s metrics in the Prometheus text format at /metrics on this port (0: any free one, logged)', port)
  .action(async (o: WorkerCommandOptions) => {
    process.exitCode = await worker(o);
  });

program
  .command('bench')
  .description('run the benchmarks (weft beside postMessage, raw sockets and piscina)')
  .action(async () => {
    // The suites are TypeScript kept beside the sources, not in the package.
    const suites = new URL('../../bench/run.ts', import.meta.url);
    if (!existsSync(suites)) {
      console.error('weft bench: the benchmark suites ship with a checkout of weft, not with the package (bench/ is missing)');
      process.exitCode = 2;
      return;
    }
    const { register } = await import('tsx/esm/api');
    register();
    const { main } = (await import(suites.href)) as { main: () => Promise<void> };
    await main();
  });

await program.parseAsync(process.argv);
