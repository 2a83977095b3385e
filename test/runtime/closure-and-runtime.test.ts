// One script with both halves of weft: the closure form of initialize()
// and Runtime.inMemory with its operations in the same script, in either
// order. The closure form re-runs the script in each of its worker
// threads, and the runtime's threads import it for its operations: each
// must stop or go on at the right call. Run as users run them, as a plain
// .mjs program against the built package and as .ts under tsx.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const dist = new URL('../../dist/index.js', import.meta.url).href;
const src = new URL('../../src/index.ts', import.meta.url).href;
const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'weft-both-'));
writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const operations = `
export const Square = defineOperation('Square', (n) => n * n);
export const Sum = defineMonoid('Sum', { empty: () => 0, combine: (a, b) => a + b });
`;
const channels = `
const guards = await initialize(Config.process(2), (allocator) => allocator.index * 10);
console.log('workers', JSON.stringify(await guards.join()));
`;
const tasks = `
const runtime = await Runtime.inMemory({ workers: 2 });
console.log('tasks', await IndexedStream.from([1, 2, 3, 4]).map(Square).fold(Sum).run(runtime));
await runtime.close();
`;

function script(name: string, from: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `import { Config, IndexedStream, Runtime, defineMonoid, defineOperation, initialize } from ${JSON.stringify(from)};\n${operations}${body}`);
  return path;
}

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 50_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('initialize(config, fn) and Runtime.inMemory in one script', () => {
  it('initialize first, then the runtime, as .mjs', () => {
    const r = run([script('channels-first.mjs', dist, channels + tasks)]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('workers [0,10]\ntasks 30\n');
    expect(r.status).toBe(0);
  });

  it('the runtime first, then initialize, as .mjs', () => {
    const r = run([script('tasks-first.mjs', dist, tasks + channels)]);
    expect(r.stderr).toBe('');
    // Each closure worker re-runs the script's top level up to the call it
    // serves, the runtime's directive included (on its own thread): its
    // output comes once per worker, as docs/semantics.md says of top-level code.
    expect(r.stdout.trim().split('\n')).toEqual(['tasks 30', 'tasks 30', 'tasks 30', 'workers [0,10]']);
    expect(r.status).toBe(0);
  });

  it.each(['channels-first', 'tasks-first'])('%s, as .ts under tsx', (order) => {
    const body = order === 'channels-first' ? channels + tasks : tasks + channels;
    const r = run(['--import', 'tsx', script(`${order}.ts`, src, body.replaceAll('(n)', '(n: number)').replaceAll('(a, b)', '(a: number, b: number)').replaceAll('(allocator)', '(allocator: { index: number })'))]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('workers [0,10]\n');
    expect(r.stdout).toContain('tasks 30\n');
    expect(r.status).toBe(0);
  });
});
