// How a weft worker thread or a process `weft launch` starts runs the
// user's TypeScript, in this order:
//   1. Node's own type stripping (22.18+, 23.6+, or a flag turned it on),
//      for worker threads even when the program runs under tsx: tsx
//      costs each thread its start-up (workerExecArgv);
//   2. the tsx this program runs under (tsx's CLI, `node --import tsx`):
//      Node passes execArgv on to worker threads, which load it by
//      themselves; `weft launch` passes those flags on to its processes;
//   3. tsx, if installed (an optional peer dependency), registered by weft.
// weft's own sources in a checkout use TypeScript that stripping cannot
// erase (parameter properties), so a checkout always needs tsx; an
// installed weft is JavaScript.

import { missing, requireFrom } from './optional.ts';

export const TYPESCRIPT_FILE = /\.[cm]?tsx?$/;

const SELF_TYPESCRIPT = import.meta.url.endsWith('.ts');
const PRELOAD = /^--(import|require|loader|experimental-loader)(?:=(.*))?$/;
const TSX = /(^|[\\/])tsx([\\/]|$)/;

/** The positions in execArgv of the flags (and their values) that preload tsx: tsx's CLI, `node --import tsx`. */
function tsxPositions(): number[] {
  const at: number[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const match = PRELOAD.exec(argv[i]!);
    if (match === null) continue;
    const separate = match[2] === undefined;
    const value = separate ? argv[i + 1] : match[2];
    if (value !== undefined && TSX.test(value.replace(/^file:\/\//, ''))) at.push(...(separate ? [i, i + 1] : [i]));
    if (separate) i++;
  }
  return at;
}

/** The flags that preload tsx in this process, as given: empty if none. */
export function tsxFlags(): string[] {
  return tsxPositions().map((i) => process.execArgv[i]!);
}

// Node 22 and later run the main thread's preloaded loaders (tsx's
// --import) in every worker thread; Node 20's threads start without them,
// so there a tsx the program runs under is registered again in each thread.
const LOADERS_REACH_THREADS = Number(process.versions.node.split('.')[0]) >= 22;

/** Node runs the user's TypeScript by itself, and weft is JavaScript. */
const stripsAll = (): boolean => process.features.typescript !== false && !SELF_TYPESCRIPT;

/**
 * The execArgv of a new worker thread, undefined for this process's own.
 * Where Node strips types, tsx stays in the main thread: loading it again
 * costs each thread more than the rest of its start-up (bench/startup.ts).
 */
export function workerExecArgv(): string[] | undefined {
  if (!stripsAll()) return undefined;
  const drop = new Set(tsxPositions());
  return drop.size === 0 ? undefined : process.execArgv.filter((_, i) => !drop.has(i));
}

/**
 * Whether a new thread or process must have tsx registered by weft to run
 * TypeScript: neither preloaded (1.) nor stripped by Node (2.). Throws a
 * ModuleError naming tsx when it must and tsx is not installed.
 */
export function mustRegisterTsx(neededBy: string): boolean {
  if (stripsAll() || (tsxFlags().length > 0 && LOADERS_REACH_THREADS)) return false;
  tsxEntry(neededBy);
  return true;
}

/** The file `--import tsx` loads, resolved from weft's own folder (a user's app that installed tsx). */
export function tsxEntry(neededBy: string): string {
  try {
    return requireFrom(import.meta.url).resolve('tsx');
  } catch (error) {
    const why = `${neededBy} on Node.js ${process.version}, which does not strip types itself (22.18+ does), and not run under tsx,`;
    throw missing(error, 'tsx', why) ?? error;
  }
}
