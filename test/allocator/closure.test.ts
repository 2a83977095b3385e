// The closure form, run the way users run it: a real child process for a
// .ts script (through tsx) and a .js script (against the built package).
// Inside the closure, the script's imports and top-level helpers work.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Config, ModuleError, Runtime, initialize } from '../../src/index.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const dist = new URL('../../dist/index.js', import.meta.url).href;

/** The two ways a program runs under tsx: its CLI (a second process) and its loader alone. */
const TSX_RUNNERS: [string, string[]][] = [
  ['tsx\'s CLI', [join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs')]],
  ['node --import tsx', ['--import', 'tsx']],
];

/** A fresh folder of ES modules (package.json "type": "module"), for a script's files. */
function moduleDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  return dir;
}

function digest(n: number): string {
  return createHash('sha256').update(`weft closure:${n}`).digest('hex').slice(0, 12);
}

function run(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd: root, input, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectResults(r: { status: number | null; stdout: string; stderr: string }): void {
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { call: number; results: string[] });
  const both = [digest(0), digest(1)].sort().join(',');
  // Only the main thread prints: the workers stop at the call they serve.
  expect(lines).toEqual([
    { call: 0, results: [both, both] },
    { call: 1, results: [digest(100), digest(101)] },
  ]);
}

// Prints the error initialize() rejects with, for a script that has no file.
const noScript = `
import { Config, initialize } from ${JSON.stringify(dist)};
try {
  await initialize(Config.process(2), () => 1);
  console.log('no error');
} catch (e) {
  console.log(e.name + ': ' + e.message);
}
`;

describe('the closure form', () => {
  it('runs a .ts script through tsx with its imports and top-level helpers', () => {
    expectResults(run(['--import', 'tsx', fixture('closure.ts')]));
  });

  // Where Node strips types, weft's threads run the user's .ts without the
  // tsx the program runs under (tsx would cost each thread its start-up):
  // observed by a specifier only tsx resolves (./helper.js names helper.ts).
  it.each(TSX_RUNNERS)('under %s, runs the workers of the built package without tsx where Node strips types', (_, runner) => {
    const dir = moduleDir('weft-tsx-free-');
    writeFileSync(join(dir, 'helper.ts'), 'export const helper: string = "loaded";\n');
    writeFileSync(join(dir, 'script.ts'), `import { Config, initialize, type Allocator } from ${JSON.stringify(dist)};
const loader = (): Promise<string> => import('./helper.js').then(() => 'tsx', (e: { code?: string }) => (e.code === 'ERR_MODULE_NOT_FOUND' ? 'node' : String(e)));
const main = await loader();
const guards = await initialize(Config.process(2), (_: Allocator) => loader());
console.log(JSON.stringify({ main, workers: await guards.join() }));
`);
    const r = run([...runner, join(dir, 'script.ts')]);
    expect(r.stderr).toBe('');
    const workers = process.features.typescript ? 'node' : 'tsx';
    expect(JSON.parse(r.stdout)).toEqual({ main: 'tsx', workers: [workers, workers] });
  });

  // ...and what Node refuses to strip, tsx still runs there: a .ts named by
  // its .js name, an enum, in the script and in an operations module.
  it.each(TSX_RUNNERS)('under %s, runs in worker threads the TypeScript Node cannot strip, through tsx', (_, runner) => {
    const dir = moduleDir('weft-tsx-needed-');
    writeFileSync(join(dir, 'helper.ts'), 'export enum Offset { By = 10 }\nexport const shift = (n: number): number => n + Offset.By;\n');
    writeFileSync(join(dir, 'ops.ts'), `import { defineOperation } from ${JSON.stringify(dist)};\nimport { shift } from './helper.js';\nexport const Shift = defineOperation('Shift', (n: number) => shift(n));\n`);
    writeFileSync(join(dir, 'script.ts'), `import { Config, Runtime, initialize, type Allocator } from ${JSON.stringify(dist)};
import { shift } from './helper.js';
import { Shift } from './ops.js';
class Scaled { constructor(private readonly by: number) {} of(n: number): number { return n * this.by; } }
const guards = await initialize(Config.process(2), (a: Allocator) => shift(new Scaled(100).of(a.index)));
const closure = await guards.join();
const runtime = await Runtime.inMemory({ workers: 2, operations: new URL('./ops.ts', import.meta.url) });
console.log(JSON.stringify({ closure, runtime: await runtime.fanout(Shift, [1, 2]) }));
await runtime.close();
`);
    const r = run([...runner, join(dir, 'script.ts')]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ closure: [10, 110], runtime: [11, 12] });
  });

  // A .tsx file: Node does not know the extension (ERR_UNKNOWN_FILE_EXTENSION), tsx does.
  it('under node --import tsx, runs in worker threads a script that imports a .tsx file, through tsx', () => {
    const dir = moduleDir('weft-tsx-tsx-');
    writeFileSync(join(dir, 'unit.tsx'), 'export const unit: number = 7;\n');
    writeFileSync(join(dir, 'script.ts'), `import { Config, initialize, type Allocator } from ${JSON.stringify(dist)};
import { unit } from './unit.tsx';
const guards = await initialize(Config.process(2), (a: Allocator) => a.index + unit);
console.log(JSON.stringify(await guards.join()));
`);
    const r = run(['--import', 'tsx', join(dir, 'script.ts')]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual([7, 8]);
  });

  // The thread imports again through tsx only what tsx cures, and only
  // what Node refused: a script whose body ran and then failed on a
  // package that does not exist runs once in the worker and reports
  // Node's refusal; when the import through tsx fails too (the re-run
  // body finds its lock file taken), Node's refusal is still what the
  // user sees. Each run logs its body to a file.
  it.each([
    ['a package that does not exist', "await import('no-such-package-xyz');", 2, /Cannot find package 'no-such-package-xyz'/],
    ['an enum, after taking a lock file', "writeFileSync(join(dir, 'lock'), '', { flag: 'wx' });\n  await import('./plugin.ts');", 3, /enum is not supported/],
  ])('under node --import tsx, a worker whose script body ran and then imported %s reports Node\'s refusal', (_, failing, runs, refusal) => {
    const dir = moduleDir('weft-tsx-ran-');
    writeFileSync(join(dir, 'plugin.ts'), 'export enum Kind { A }\n');
    writeFileSync(join(dir, 'script.ts'), `import { appendFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { Config, initialize } from ${JSON.stringify(dist)};
const dir = dirname(fileURLToPath(import.meta.url));
appendFileSync(join(dir, 'runs'), 'body\\n');
if (!isMainThread) {
  ${failing}
}
const failed = await initialize(Config.process(1), () => 1).then((guards) => guards.join()).then(String, (e: Error) => e.message);
console.log(JSON.stringify(failed));
`);
    const r = run(['--import', 'tsx', join(dir, 'script.ts')]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatch(refusal);
    expect(readFileSync(join(dir, 'runs'), 'utf8')).toBe('body\n'.repeat(runs));
  });

  // Under `node --test` Node (24 and 26; not 22) refuses explicit execArgv
  // for threads, which then inherit tsx: such a thread never registers tsx
  // a second time. Observed by a worker module that throws, itself, an
  // error with the code of a refusal tsx cures: it runs once. A thread
  // started without tsx (Node 22 here) imports it again through tsx.
  it('under node --import tsx --test, a worker thread that inherits tsx does not import a failing module again', () => {
    const dir = moduleDir('weft-tsx-inherited-');
    writeFileSync(join(dir, 'ops.ts'), `import { appendFileSync } from 'node:fs';
appendFileSync(new URL('./runs', import.meta.url), (process.execArgv.some((a) => a.includes('tsx')) ? 'inherited' : 'left out') + '\\n');
throw Object.assign(new Error('refused by the module itself'), { code: 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX' });
export const work = (): number => 1;
`);
    writeFileSync(join(dir, 'check.test.ts'), `import { test } from 'node:test';
import { Config, initialize } from ${JSON.stringify(dist)};
test('imports the module once', async () => {
  const module = new URL('./ops.ts', import.meta.url).href;
  const failed = await initialize(Config.process(1), { module, export: 'work' }).then((guards) => guards.join()).then(String, (e: Error) => e.message);
  console.log(JSON.stringify(failed));
});
`);
    const r = run(['--import', 'tsx', '--test', '--test-reporter=tap', join(dir, 'check.test.ts')]);
    expect(r.stdout).toMatch(/refused by the module itself/);
    expect(r.status).toBe(0);
    const runs = readFileSync(join(dir, 'runs'), 'utf8');
    expect(runs).toBe(runs.startsWith('inherited') ? 'inherited\n' : 'left out\nleft out\n');
  });

  it('runs a .js script against the built package', () => {
    expectResults(run([fixture('closure.mjs')]));
  });

  it('refuses a script given with --eval: use the module form', () => {
    const r = run(['--input-type=module', '--eval', noScript, 'an-argument']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ModuleError: .*use the module form/);
  });

  it('refuses a script read from stdin: use the module form', () => {
    for (const args of [['--input-type=module', '-'], ['--input-type=module']]) {
      const r = run(args, noScript);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^ModuleError: .*use the module form/);
    }
  });

  // This file runs under vitest: the main script is vitest's own worker.
  it('refuses to re-run a test runner (here vitest), naming it: use the module form', async () => {
    const e = await initialize(Config.process(2), () => 1).catch((error: unknown) => error);
    expect(e).toBeInstanceOf(ModuleError);
    expect((e as Error).message).toMatch(/under vitest that would re-run the test runner; use the module form/);
    const r = await Runtime.inMemory({ workers: 1 }).catch((error: unknown) => error);
    expect(r).toBeInstanceOf(ModuleError);
    expect((r as Error).message).toMatch(/under vitest that is the test runner's; pass \{ operations/);
  });

  it('refuses to re-run a script that registers node:test tests', () => {
    const test = `
import { test } from 'node:test';
import { Config, initialize } from ${JSON.stringify(dist)};
test('closure form', async () => {
  const e = await initialize(Config.process(2), () => 1).catch((error) => error);
  console.log(e.name + ': ' + e.message);
});
`;
    const file = join(mkdtempSync(join(tmpdir(), 'weft-node-test-')), 'closure.test.mjs');
    writeFileSync(file, test);
    const r = run(['--test', '--test-reporter=tap', file]);
    expect(r.stdout).toMatch(/ModuleError: .*under node --test \(node:test\) that would re-run the test runner; use the module form/);
    expect(r.status).toBe(0);
  });
});
