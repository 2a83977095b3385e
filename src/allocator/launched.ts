// `weft launch` starts N copies of a script and hands each its flags; a
// script that never reads them (Config.fromArgs) runs as N unrelated
// programs, each on its own config. Nothing fails, so weft says so, at the
// script's first initialize().
//
// Importing this module changes nothing (no environment variable deleted,
// no exit hook): the variable names the launcher's pid, so a program the
// launched script starts in turn, which inherits it, knows it is not meant.

import { isMainThread } from 'node:worker_threads';

/** Set by `weft launch` in each process it starts: launchedValue(). */
export const LAUNCHED_ENV = 'WEFT_LAUNCHED';

/** LAUNCHED_ENV for process `index` of `processes`, started by this process. */
export function launchedValue(index: number, processes: number): string {
  return `${index}/${processes}/${process.pid}`;
}

// On the global object: the script may import another copy of weft than the
// one that reads its flags.
const READ = Symbol.for('weft.argsRead');
const global = globalThis as Record<symbol, unknown>;
let warned = false;

/** Config.fromArgs was called. */
export function argsRead(): void {
  global[READ] = true;
}

/**
 * Warns once, from the first launched process only, if this script was
 * started by `weft launch` and has not read its flags.
 */
export function checkLaunched(): void {
  if (warned || !isMainThread || global[READ] === true) return;
  const [index, processes, launcher] = (process.env[LAUNCHED_ENV] ?? '').split('/');
  if (index !== '0' || launcher !== String(process.ppid)) return;
  warned = true;
  process.stderr.write(`weft: this script never read Config.fromArgs(process.argv.slice(2)), so weft launch runs it as ${processes} independent copies, not as one cluster\n`);
}
