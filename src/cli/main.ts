// The `weft` command line.

import { Command, InvalidArgumentError } from 'commander';
import { launch } from './launch.ts';

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

const program = new Command('weft').description('parallel and distributed programs for Node.js');

program
  .command('launch')
  .description('run <script> as a local cluster on 127.0.0.1')
  .requiredOption('-n, --processes <n>', 'processes', positive)
  .option('-w, --threads <n>', 'worker threads per process', positive, 1)
  .argument('<script>', 'a .js or .ts program that calls initialize(Config.fromArgs(...).config, ...)')
  .argument('[args...]', 'passed on to the script')
  .allowUnknownOption()
  .action(async (script: string, args: string[], o: { processes: number; threads: number }) => {
    process.exitCode = await launch({ processes: o.processes, threads: o.threads, script, args });
  });

program
  .command('bench')
  .description('run the benchmarks (weft beside postMessage, raw sockets and piscina)')
  .action(async () => {
    // The suites are TypeScript kept beside the sources, not in the build.
    const { register } = await import('tsx/esm/api');
    register();
    await import(new URL('../../bench/run.ts', import.meta.url).href);
  });

await program.parseAsync(process.argv);
