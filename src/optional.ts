// weft's optional peer dependencies (package.json peerDependenciesMeta):
// amqplib for the AMQP backend, node-forge for `weft keys`, tsx for
// TypeScript where Node.js cannot strip types. Each is imported only by
// the code that needs it, so an app that never uses that code need not
// install it; the code that does says which package is missing.

import { ModuleError } from './errors.ts';

/**
 * `createRequire(url)` of node:module as Node holds it: an `import from
 * 'node:module'` makes an ES module of all its exports, source maps
 * included, in every thread that loads weft.
 */
export function requireFrom(url: string): NodeJS.Require {
  return process.getBuiltinModule('node:module').createRequire(url);
}

/**
 * Runs `load` (a dynamic import that reaches `name`), turning "cannot find
 * package `name`" into a ModuleError that says what needs it and how to
 * install it. Any other failure is passed on as it is.
 */
export async function importOptional<T>(name: string, neededBy: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    throw missing(error, name, neededBy) ?? error;
  }
}

/** `importOptional` for a CommonJS package needed by synchronous code. */
export function requireOptional<T>(name: string, neededBy: string): T {
  try {
    return requireFrom(import.meta.url)(name) as T;
  } catch (error) {
    throw missing(error, name, neededBy) ?? error;
  }
}

/** The ModuleError for `error` if it says package `name` is not installed. */
export function missing(error: unknown, name: string, neededBy: string): ModuleError | undefined {
  const e = error as { code?: unknown; message?: unknown } | null;
  const notFound = e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND';
  if (!notFound || typeof e.message !== 'string' || !e.message.includes(`'${name}`)) return undefined;
  return new ModuleError(`${neededBy} needs the package ${name}, an optional peer dependency of weft that is not installed: npm install ${name}`, { cause: error });
}
