// `weft launch` starts N copies of a script and hands each its flags; a
// script that never reads them (Config.fromArgs) runs as N unrelated
// programs, each on its own config. Nothing fails, so weft says so.

import { isMainThread } from 'node:worker_threads';

/** Set by `weft launch` in each process it starts: "<process>/<processes>". */
export const LAUNCHED_ENV = 'WEFT_LAUNCHED';

// On the global object: the script may import another copy of weft than the
// one that reads its flags.
const READ = Symbol.for('weft.argsRead');
const global = globalThis as Record<symbol, unknown>;

// Read once, and not passed on: a program this one starts is not launched.
const launched = isMainThread ? process.env[LAUNCHED_ENV] : undefined;
if (isMainThread) delete process.env[LAUNCHED_ENV];
let warned = false;

/** Config.fromArgs was called. */
export function argsRead(): void {
  global[READ] = true;
}

/**
 * Warns once, from the first launched process only, if this script was
 * started by `weft launch` and has not read its flags: at its first
 * initialize(), or at exit for a script that never calls it.
 */
export function checkLaunched(): void {
  if (warned || launched === undefined || global[READ] === true) return;
  const [index, processes] = launched.split('/');
  if (index !== '0') return;
  warned = true;
  process.stderr.write(`weft: this script never read Config.fromArgs(process.argv.slice(2)), so weft launch runs it as ${processes} independent copies, not as one cluster\n`);
}

if (launched !== undefined) process.once('exit', checkLaunched);
