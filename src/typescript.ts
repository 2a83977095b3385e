// How a weft worker thread or a process `weft launch` starts runs the
// user's TypeScript, in this order:
//   1. the tsx this program runs under (tsx's CLI, `node --import tsx`):
//      Node passes execArgv on to worker threads, which load it by
//      themselves; `weft launch` passes those flags on to its processes;
//   2. Node's own type stripping (22.18+, 23.6+, or a flag turned it on);
//   3. tsx, if installed (an optional peer dependency), registered by weft.
// weft's own sources in a checkout use TypeScript that stripping cannot
// erase (parameter properties), so a checkout always needs tsx; an
// installed weft is JavaScript.

import { createRequire } from 'node:module';
import { missing } from './optional.ts';

export const TYPESCRIPT_FILE = /\.[cm]?tsx?$/;

const SELF_TYPESCRIPT = import.meta.url.endsWith('.ts');
const PRELOAD = /^--(import|require|loader|experimental-loader)(?:=(.*))?$/;
const TSX = /(^|[\\/])tsx([\\/]|$)/;

/** The flags that preload tsx in this process (tsx's CLI, `node --import tsx`), as pairs: empty if none. */
export function tsxFlags(): string[] {
  const flags: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const match = PRELOAD.exec(argv[i]!);
    if (match === null) continue;
    const value = match[2] ?? argv[++i];
    if (value !== undefined && TSX.test(value.replace(/^file:\/\//, ''))) flags.push(`--${match[1]}`, value);
  }
  return flags;
}

/**
 * Whether a new thread or process must have tsx registered by weft to run
 * TypeScript: neither preloaded (1.) nor stripped by Node (2.). Throws a
 * ModuleError naming tsx when it must and tsx is not installed.
 */
export function mustRegisterTsx(neededBy: string): boolean {
  if (tsxFlags().length > 0) return false;
  if (process.features.typescript !== false && !SELF_TYPESCRIPT) return false;
  tsxEntry(neededBy);
  return true;
}

/** The file `--import tsx` loads, resolved from weft's own folder (a user's app that installed tsx). */
export function tsxEntry(neededBy: string): string {
  try {
    return createRequire(import.meta.url).resolve('tsx');
  } catch (error) {
    const why = `${neededBy} on Node.js ${process.version}, which does not strip types itself (22.18+ does), and not run under tsx,`;
    throw missing(error, 'tsx', why) ?? error;
  }
}
