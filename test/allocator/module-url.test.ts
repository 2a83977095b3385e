// The one reading of "a module" that initialize's module form, a hosted
// pool and the runtimes' operations share.

import { describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { moduleUrl } from '../../src/allocator/module-url.ts';
import { ModuleError } from '../../src/index.ts';

describe('moduleUrl', () => {
  it('resolves a relative path against the current directory', () => {
    expect(moduleUrl('./ops.js')).toBe(pathToFileURL(resolve('ops.js')).href);
    expect(moduleUrl('lib/ops.ts')).toBe(pathToFileURL(resolve('lib/ops.ts')).href);
  });

  it('turns an absolute path into a file URL, escaping what a URL would read otherwise', () => {
    const path = resolve('/tmp/weft #1/ops%.js');
    expect(moduleUrl(path)).toBe(pathToFileURL(path).href);
    expect(moduleUrl(path)).toContain('%231');
  });

  it('keeps a file: URL string as it is (not a path named "file:")', () => {
    expect(moduleUrl('file:///srv/app/ops.js')).toBe('file:///srv/app/ops.js');
  });

  it('takes a URL object by its href', () => {
    expect(moduleUrl(new URL('file:///srv/app/ops.js'))).toBe('file:///srv/app/ops.js');
    expect(moduleUrl(new URL('../ops.js', 'file:///srv/app/main.js'))).toBe('file:///srv/ops.js');
  });

  it('reads a Windows drive letter as a path, not as a one-letter URL scheme, on every platform', () => {
    expect(moduleUrl('C:\\Users\\me\\ops.js')).toBe('file:///C:/Users/me/ops.js');
    expect(moduleUrl('d:/work/my ops.js')).toBe('file:///d:/work/my%20ops.js');
  });

  it('keeps other schemes as they are', () => {
    for (const url of ['data:text/javascript,export default 1', 'node:fs', 'https://example.com/ops.js']) {
      expect(moduleUrl(url)).toBe(url);
    }
  });

  it('refuses what is neither a URL nor a path with a ModuleError', () => {
    expect(() => moduleUrl('')).toThrow(ModuleError);
    expect(() => moduleUrl(42 as unknown as string)).toThrow(/got 42/);
  });
});
