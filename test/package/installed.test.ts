// weft as its users get it: the packed tarball installed into a fresh app
// folder, and the README's examples run there, in JavaScript and in
// TypeScript. The rest of the suite runs from src/ and cannot see what the
// package lacks (a file left out of `files`, a loader only the checkout has,
// a type only a devDependency provides).
//
// CI packs the fresh clone itself (prepack builds dist/) and hands the
// tarball over in WEFT_TARBALL; otherwise the tarball is packed here from
// the dist/ the global setup just built.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` };
let app: string;
let tarball: string;

function sh(file: string, args: string[], cwd: string): string {
  return execFileSync(file, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const [file, ...rest] = args;
  const bin = file === 'node' ? process.execPath : join(app, 'node_modules', '.bin', file!);
  const r = spawnSync(bin, rest, { cwd: app, env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The first ```ts block of the README after `heading`, as written there. */
function readmeExample(heading: string): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const at = readme.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`README has no ${heading}`);
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  if (block === null) throw new Error(`README has no ts example under ${heading}`);
  return block[1]!;
}

/** A README example as the user saves it: app.ts verbatim, or app.mjs with its types taken out. */
function save(name: string, source: string): void {
  const text = name.endsWith('.ts') ? source : ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText;
  writeFileSync(join(app, name), text);
}

/**
 * What a type-check of the app may take: tsc 5.9 without skipLibCheck took
 * 80-113 s on a loaded 2-core machine (load 18), past vitest's 60 s.
 */
const TYPECHECK_MS = 300_000;

const devVersion = (name: string): string => (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

beforeAll(() => {
  app = mkdtempSync(join(tmpdir(), 'weft-app-'));
  tarball = process.env.WEFT_TARBALL ?? join(app, sh('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', app], root).trim().split('\n').pop()!);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // From the local npm cache where it can: the same versions the checkout uses.
  // TypeScript 5.9 (the checkout's) and 7 side by side, as `tsc` and `tsc7`.
  sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball, `typescript@${devVersion('typescript')}`, 'ts7@npm:typescript@^7', `@types/node@${devVersion('@types/node')}`], app);
}, 300_000);

/** `tsc` (the checkout's TypeScript) or `tsc7`, as installed in the app: both packages name their command tsc. */
const tscBin = (tsc: string): string => join(app, 'node_modules', tsc === 'tsc' ? 'typescript' : 'ts7', 'bin', 'tsc');

/** Installs tsx into the app, for the tests that run under it (weft does not install it). */
function installTsx(): void {
  sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', `tsx@${devVersion('tsx')}`], app);
}

afterAll(() => {
  if (app !== undefined) rmSync(app, { recursive: true, force: true });
});

describe('the installed package', () => {
  it('holds the build, the command, the docs and the licence, and no sources or maps', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n').map((f) => f.replace(/^package\//, ''));
    for (const f of ['package.json', 'README.md', 'LICENSE', 'bin/weft.mjs', 'dist/index.js', 'dist/index.d.ts', 'dist/allocator/bootstrap.mjs', 'dist/cli/main.js', 'docs/semantics.md']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => /\.map$|^(src|test|bench|examples|\.ci|\.cache)\//.test(f))).toEqual([]);
  });

  it('installs without its optional peers: amqplib, node-forge, tsx', () => {
    for (const name of ['amqplib', 'node-forge', 'tsx']) expect(existsSync(join(app, 'node_modules', name))).toBe(false);
  });

  it('says which package is missing when a feature needs an optional peer', () => {
    writeFileSync(join(app, 'amqp.mjs'), `import { Runtime } from 'weft';\nawait Runtime.amqp({ url: 'amqp://127.0.0.1:1' });\n`);
    const amqp = run(['node', 'amqp.mjs']);
    expect(amqp.stderr).toMatch(/ModuleError: the AMQP backend \(Runtime.amqp, WorkerRuntime.amqp, weft worker\) needs the package amqplib, an optional peer dependency of weft that is not installed: npm install amqplib/);
    expect(amqp.status).not.toBe(0);
    writeFileSync(join(app, 'no-ops.mjs'), 'export {};\n');
    const worker = run(['weft', 'worker', '--amqp', 'amqp://127.0.0.1:1', '--operations', './no-ops.mjs']);
    expect(worker.stderr).toBe('weft worker: the AMQP backend (Runtime.amqp, WorkerRuntime.amqp, weft worker) needs the package amqplib, an optional peer dependency of weft that is not installed: npm install amqplib\n');
    expect(worker.status).toBe(2);
    const keys = run(['weft', 'keys', '-n', '1', 'keys']);
    expect(keys.stderr).toBe('weft keys needs the package node-forge, an optional peer dependency of weft that is not installed: npm install node-forge\n');
    expect(keys.status).toBe(1);
    // A Node.js that does not strip types, and no tsx: weft says so before any thread starts.
    writeFileSync(join(app, 'ops-only.ts'), `export const x: number = 1;\n`);
    writeFileSync(join(app, 'no-strip.mjs'), `import { Runtime } from 'weft';\ntry { await Runtime.inMemory({ workers: 1, operations: './ops-only.ts' }); } catch (e) { console.log(e.name + ': ' + e.message); }\n`);
    const noStrip = run(['node', '--no-experimental-strip-types', 'no-strip.mjs']);
    expect(noStrip.stdout).toMatch(/^ModuleError: a worker thread running TypeScript \(file:.*ops-only.ts\) on Node.js v[\d.]+, which does not strip types itself \(22.18\+ does\), and not run under tsx, needs the package tsx/);
    // weft launch says so once, before it starts any process.
    const launched = spawnSync(process.execPath, ['--no-experimental-strip-types', join(app, 'node_modules', '.bin', 'weft'), 'launch', '-n', '2', 'ops-only.ts'], { cwd: app, env, encoding: 'utf8', timeout: 60_000 });
    expect(launched.stderr).toMatch(/^weft launch: the script \S*ops-only.ts on Node.js v[\d.]+, which does not strip types itself \(22.18\+ does\), and not run under tsx, needs the package tsx, an optional peer dependency of weft that is not installed: npm install tsx\n$/);
    expect(launched.status).toBe(2);
  });

  it('can be required from CommonJS', () => {
    const r = run(['node', '-e', "const weft = require('weft'); console.log(typeof weft.initialize, typeof weft.Runtime.inMemory)"]);
    expect(r.stdout).toBe('function function\n');
    expect(r.status).toBe(0);
  });

  it("does not list bench in weft --help: the suites are not in the package", () => {
    const r = run(['weft', '--help']);
    expect(r.stdout).toMatch(/launch \[options\]/);
    expect(r.stdout).not.toMatch(/bench/);
  });

  it.each(['tsc', 'tsc7'])("type-checks the README's examples under %s --init defaults", (tsc) => {
    const dir = join(app, `init-${tsc}`);
    mkdirSync(dir);
    const bin = tscBin(tsc);
    execFileSync(process.execPath, [bin, '--init'], { cwd: dir, env, stdio: 'ignore' });
    writeFileSync(join(dir, 'channels.ts'), readmeExample('## Channels'));
    writeFileSync(join(dir, 'tasks.ts'), readmeExample('## Tasks'));
    const r = spawnSync(process.execPath, [bin, '-p', '.', '--noEmit'], { cwd: dir, env, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, TYPECHECK_MS);

  it("type-checks the README's examples under tsc7 --init defaults in an app with no @types/node", () => {
    // A folder of its own beside the app: inside it, the app's @types/node would be found.
    const bare = mkdtempSync(join(tmpdir(), 'weft-bare-'));
    try {
      writeFileSync(join(bare, 'package.json'), JSON.stringify({ name: 'bare', private: true, type: 'module' }));
      sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], bare);
      expect(existsSync(join(bare, 'node_modules', '@types'))).toBe(false);
      execFileSync(process.execPath, [tscBin('tsc7'), '--init'], { cwd: bare, env, stdio: 'ignore' });
      writeFileSync(join(bare, 'channels.ts'), readmeExample('## Channels'));
      writeFileSync(join(bare, 'tasks.ts'), readmeExample('## Tasks'));
      const r = spawnSync(process.execPath, [tscBin('tsc7'), '-p', '.', '--noEmit'], { cwd: bare, env, encoding: 'utf8' });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  }, TYPECHECK_MS);

  it.each(['hello.mjs', 'hello.ts'])("runs the README's channels example as %s with node", (name) => {
    save(name, readmeExample('## Channels'));
    const r = run(['node', name]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 4).sort()).toEqual(['worker 0: <hello, 0>', 'worker 0: <hello, 0>', 'worker 1: <hello, 1>', 'worker 1: <hello, 1>']);
    expect(lines[4]).toBe('[ 0, 1 ]');
  });

  it.each(['hello.mjs', 'hello.ts'])("runs the README's channels example as %s under tsx", (name) => {
    installTsx();
    save(name, readmeExample('## Channels'));
    const r = run(name.endsWith('.ts') ? ['tsx', name] : ['node', name]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 4).sort()).toEqual(['worker 0: <hello, 0>', 'worker 0: <hello, 0>', 'worker 1: <hello, 1>', 'worker 1: <hello, 1>']);
    expect(lines[4]).toBe('[ 0, 1 ]');
  });

  it.each([['tasks.mjs', 'node'], ['tasks.ts', 'node'], ['tasks.ts', 'tsx']])("runs the README's tasks example as %s with %s", (name, runner) => {
    if (runner === 'tsx') installTsx();
    save(name, readmeExample('## Tasks'));
    const r = run([runner, name]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('143\n');
  });

  it("runs Runtime.cluster under weft launch with operations: './ops.ts'", () => {
    writeFileSync(
      join(app, 'ops.ts'),
      `import { defineOperation, defineMonoid } from 'weft';
export const Square = defineOperation('Square', (n: number): number => n * n);
export const Sum = defineMonoid('Sum', { empty: () => 0, combine: (a: number, b: number) => a + b });
`,
    );
    writeFileSync(
      join(app, 'cluster.ts'),
      `import { Config, IndexedStream, Runtime } from 'weft';
import { Square, Sum } from './ops.ts';

const { config } = Config.fromArgs(process.argv.slice(2));
const runtime = await Runtime.cluster(config, { operations: './ops.ts' });
if (runtime !== undefined) {
  console.log(await IndexedStream.from([1, 2, 3, 4]).map(Square).fold(Sum).run(runtime));
  await runtime.close();
}
`,
    );
    const r = run(['weft', 'launch', '-n', '2', '-w', '2', 'cluster.ts']);
    expect(r.stderr).toBe('weft: launching 2 processes x 2 threads of cluster.ts\n');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('[0] 30\n');
  });

  it("runs a .ts that type stripping refuses (an enum) under weft launch run through tsx, as docs/cluster.md says", () => {
    installTsx();
    writeFileSync(
      join(app, 'enum.ts'),
      `import { Config, initialize } from 'weft';
enum Step { One = 1 }
const { config } = Config.fromArgs(process.argv.slice(2));
const guards = await initialize(config, (allocator) => allocator.index + Step.One);
console.log((await guards.join()).join());
`,
    );
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(app, 'node_modules', '.bin', 'weft'), 'launch', '-n', '2', '-w', '2', 'enum.ts'], { cwd: app, env, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('weft: launching 2 processes x 2 threads of enum.ts\n');
    // join() resolves to this process's workers' results.
    expect(r.stdout.trim().split('\n').sort()).toEqual(['[0] 1,2', '[1] 3,4']);
    expect(r.status).toBe(0);
  });

  it.each(['mjs', 'ts'])("runs the README's way of testing code that uses weft under node --test (.%s)", (ext) => {
    const typed = ext === 'ts';
    writeFileSync(join(app, `workers.${ext}`), `${typed ? "import type { Allocator } from 'weft';\n" : ''}export function hello(allocator${typed ? ': Allocator' : ''}) { return allocator.index; }\n`);
    writeFileSync(join(app, `double.${ext}`), `import { defineOperation } from 'weft';\nexport const Double = defineOperation('Double', (n${typed ? ': number' : ''}) => 2 * n);\n`);
    // JavaScript before Node 24 has no \`await using\`: close by hand there.
    writeFileSync(
      join(app, `weft.test.${ext}`),
      `import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Config, IndexedStream, Runtime, initialize } from 'weft';
import { Double } from './double.${ext}';

test('workers', async () => {
  ${typed ? 'await using guards' : 'const guards'} = await initialize(Config.process(2), { module: new URL('./workers.${ext}', import.meta.url), export: 'hello' });
  assert.deepEqual(await guards.join(), [0, 1]);
});

test('operations', async () => {
  ${typed ? 'await using runtime' : 'const runtime'} = await Runtime.inMemory({ workers: 2, operations: new URL('./double.${ext}', import.meta.url) });
  assert.deepEqual(await IndexedStream.from([1, 2, 3]).map(Double).run(runtime), [2, 4, 6]);
  ${typed ? '' : 'await runtime.close();'}
});

test('the closure form says to use the module form', async () => {
  await assert.rejects(initialize(Config.process(2), () => 1), { name: 'ModuleError', message: /under node --test .*use the module form/ });
});
`,
    );
    if (typed) installTsx();
    const r = run(typed ? ['node', '--import', 'tsx', '--test', '--test-reporter=tap', `weft.test.${ext}`] : ['node', '--test', '--test-reporter=tap', `weft.test.${ext}`]);
    expect(r.stdout).toMatch(/# pass 3\n# fail 0/);
    expect(r.status).toBe(0);
  });

  it('warns, once, when weft launch runs a script that never reads Config.fromArgs', () => {
    writeFileSync(join(app, 'copies.mjs'), `import { Config, initialize } from 'weft';\nconsole.log((await (await initialize(Config.process(2), (a) => a.index)).join()).join());\n`);
    const r = run(['weft', 'launch', '-n', '2', 'copies.mjs']);
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n').sort().join('\n')).toBe('\n[0] 0,1\n[1] 0,1');
    expect(r.stderr).toBe('weft: launching 2 processes x 1 threads of copies.mjs\n[0] weft: this script never read Config.fromArgs(process.argv.slice(2)), so weft launch runs it as 2 independent copies, not as one cluster\n');
  });

  it('answers weft --version', () => {
    const r = run(['weft', '--version']);
    expect(r.stdout).toBe(`${JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version}\n`);
  });

  // Last: it installs @types/node 26 over the checkout's. Its 26 swapped
  // type parameters weft's declarations name (tracingChannel's).
  it.each([['tsc', 'checkout'], ['tsc7', 'checkout'], ['tsc', '26'], ['tsc7', '26']])("type-checks a strict app without skipLibCheck, listing no types (\"types\": []), under %s with @types/node %s", (tsc, types) => {
    if (types !== 'checkout') sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', `@types/node@${types}`], app);
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: false, types: [] },
        include: ['typed.ts'],
      }),
    );
    writeFileSync(
      join(app, 'typed.ts'),
      `import * as weft from 'weft';
import { Config, initialize, Runtime, IndexedStream, defineOperation, codecs, type Allocator, type Push, type Pull, type AmqpWorker } from 'weft';

export const Twice = defineOperation('Twice', (n: number): number => 2 * n);
export async function main(): Promise<number[]> {
  const guards = await initialize(Config.thread(), (a: Allocator) => {
    const [push, pull]: [Push<Float64Array>[], Pull<Float64Array>] = a.allocate(0, codecs.typedArray(Float64Array));
    push[0]!.send(new Float64Array(1));
    return a.index;
  });
  const runtime = await Runtime.inMemory({ workers: 1 });
  const out: number[] = await IndexedStream.from([1]).map(Twice).run(runtime);
  await runtime.close();
  return [...(await guards.join()), ...out];
}
export type Worker = AmqpWorker;
export const everything = Object.keys(weft);
`,
    );
    const r = spawnSync(process.execPath, [tscBin(tsc), '-p', '.'], { cwd: app, env, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, TYPECHECK_MS);

  // @types/node 26 swapped tracingChannel's type parameters: the subscribers
  // docs/observability.md shows must type-check with the @types/node npm
  // installs today as well as with 22's (test/observability/docs.test.ts).
  it.each(['tsc', 'tsc7'])("type-checks docs/observability.md's diagnostics_channel subscribers under %s --init defaults with @types/node 26", (tsc) => {
    sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', '@types/node@26'], app);
    const dir = join(app, `subscribers-${tsc}`);
    mkdirSync(dir);
    execFileSync(process.execPath, [tscBin(tsc), '--init'], { cwd: dir, env, stdio: 'ignore' });
    const doc = readFileSync(join(root, 'docs/observability.md'), 'utf8');
    const section = doc.slice(doc.indexOf('\n## `diagnostics_channel`\n'), doc.indexOf('\n## OpenTelemetry'));
    const examples = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(examples).toHaveLength(2);
    examples.forEach((example, i) => writeFileSync(join(dir, `subscribers-${i}.ts`), example));
    const r = spawnSync(process.execPath, [tscBin(tsc), '-p', '.', '--noEmit'], { cwd: dir, env, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, TYPECHECK_MS);
});
