// weft's one reading of "a module": what initialize's module form, a hosted
// pool and a runtime's operations accept, turned into the URL string a
// worker thread imports.
//
//   URL object                        its href
//   'C:\dir\m.js', 'c:/dir/m.js'      a Windows path (drive letter), as a file URL on any platform
//   'file:///x.js', 'data:...', 'node:fs', 'https://...'
//                                     a URL string, as it is
//   '/abs/m.js', './m.js', 'm.js'     a path, resolved against the current directory
//
// A drive letter is read before URL schemes: `C:` would parse as a
// one-letter scheme, and no URL scheme has one letter.

import { ModuleError } from '../errors.ts';

// node:path and node:url as Node holds them: every weft thread loads this
// file, and each `import from 'node:...'` makes the thread build an ES
// module of that builtin's exports at start-up (bench/startup.ts).
const { resolve } = process.getBuiltinModule('node:path');
const { pathToFileURL } = process.getBuiltinModule('node:url');

const DRIVE = /^[a-z]:/i;
const SCHEME = /^[a-z][a-z0-9+.-]+:/i;

/** The URL string to import for `module` (a URL, a URL string, or a path). */
export function moduleUrl(module: URL | string): string {
  if (module instanceof URL) return module.href;
  if (typeof module !== 'string' || module === '') {
    throw new ModuleError(`a module is a URL, a URL string or a path, got ${module === '' ? 'an empty string' : String(module)}`);
  }
  if (DRIVE.test(module)) return pathToFileURL(module, { windows: true }).href;
  if (SCHEME.test(module)) return module;
  return pathToFileURL(resolve(module)).href;
}
