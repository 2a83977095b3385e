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

/** The flags that preload tsx (tsx's CLI, `node --import tsx`): their positions in execArgv (with their values), and the values. */
function tsxPreloads(): { at: number[]; values: string[] } {
  const at: number[] = [];
  const values: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const match = PRELOAD.exec(argv[i]!);
    if (match === null) continue;
    const separate = match[2] === undefined;
    const value = separate ? argv[i + 1] : match[2];
    if (value !== undefined && TSX.test(value.replace(/^file:\/\//, ''))) {
      at.push(...(separate ? [i, i + 1] : [i]));
      values.push(value);
    }
    if (separate) i++;
  }
  return { at, values };
}

/** The flags that preload tsx in this process, as given: empty if none. */
export function tsxFlags(): string[] {
  return tsxPreloads().at.map((i) => process.execArgv[i]!);
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
  const drop = new Set(tsxPreloads().at);
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

/**
 * Where a worker thread started without the tsx this program runs under
 * (workerExecArgv) finds tsx's API, to load through it what Node's type
 * stripping refuses (importUserModule); undefined when no tsx is left out.
 * Resolved as Node resolved the preload: a path or URL from there, a bare
 * name from the working directory.
 */
export function tsxLeftOut(): string | undefined {
  if (leftOutApi !== null) return leftOutApi;
  const value = stripsAll() ? tsxPreloads().values[0] : undefined;
  leftOutApi = undefined;
  if (value === undefined) return undefined;
  const { isAbsolute, join } = process.getBuiltinModule('node:path');
  try {
    leftOutApi = requireFrom(value.startsWith('file:') || isAbsolute(value) ? value : join(process.cwd(), 'weft.js')).resolve('tsx/esm/api');
  } catch {
    // Not resolvable from where the preload was: threads then run without it, as Node strips.
  }
  return leftOutApi;
}

/** tsxLeftOut's answer, once found (null: not yet). */
let leftOutApi: string | undefined | null = null;

// What Node refuses that tsx runs: TypeScript that stripping cannot erase
// (enums, parameter properties, namespaces), a .tsx or .jsx file (Node
// knows neither extension), and a .ts file named by its .js name (the
// file Node did not find has a .ts sibling). Never a package Node did not
// find: tsx finds no more packages than Node.
function tsxCures(error: unknown): boolean {
  const { code, url, message } = (error ?? {}) as { code?: unknown; url?: unknown; message?: unknown };
  if (code === 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX') return true;
  if (code === 'ERR_UNKNOWN_FILE_EXTENSION') return typeof message === 'string' && /^Unknown file extension "\.[jt]sx"/.test(message);
  if (code !== 'ERR_MODULE_NOT_FOUND' || typeof url !== 'string' || !url.startsWith('file:')) return false;
  const { existsSync } = process.getBuiltinModule('node:fs');
  const { fileURLToPath } = process.getBuiltinModule('node:url');
  const path = fileURLToPath(url);
  const match = /\.([cm]?)js$/.exec(path);
  return match !== null && existsSync(`${path.slice(0, match.index)}.${match[1]}ts`);
}

interface TsxNamespace {
  import(specifier: string, parentURL: string): Promise<unknown>;
}

/** Set in a worker thread whose program runs under tsx, left out of the thread (the main thread's tsxLeftOut). */
let leftOut: string | undefined;
let namespace: TsxNamespace | undefined;

/** In a worker thread: where tsx's API is, when the program runs under a tsx this thread was started without. */
export function tsxOnDemand(api: string | undefined): void {
  leftOut = api;
}

/**
 * Imports a module of the user's in a worker thread. Where the program
 * runs under tsx and this thread was started without it (Node strips
 * types: tsx would cost every thread its start-up), a module Node refuses
 * for a reason tsx cures (tsxCures) is imported again through tsx,
 * registered in this thread then: its modules, weft among them, load
 * again as tsx's (their URLs carry tsx's namespace), which the closure
 * form and the runtimes allow for. Not once `ran()` says the module's
 * body ran (it reached its initialize() call). A refusal from a dynamic
 * import in the body that ran does re-run that body (docs/semantics.md).
 * If the import through tsx fails too, Node's refusal is thrown, with
 * tsx's failure as its cause.
 */
export async function importUserModule(url: string, ran: () => boolean = () => false): Promise<unknown> {
  try {
    return await import(url);
  } catch (error) {
    if (leftOut === undefined || ran() || !tsxCures(error)) throw error;
    namespace ??= requireFrom(import.meta.url)(leftOut).register({ namespace: 'weft' }) as TsxNamespace;
    try {
      return await namespace.import(url, import.meta.url);
    } catch (retried) {
      if (error instanceof Error && error.cause === undefined) error.cause = retried;
      throw error;
    }
  }
}
