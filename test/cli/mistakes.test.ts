// The weft command given what a user gets wrong: each mistake is one line
// naming it, a non-zero exit, no stack trace, and nothing started.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../cluster/helpers.ts';

let dir: string;
let script: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'weft-cli-'));
  script = join(dir, 'args.mjs');
  writeFileSync(script, "console.log('ran', process.argv.slice(2).join(' '));\n");
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function weft(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/weft.mjs'), ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('weft launch, given a mistake', () => {
  it.each([
    [['--bogus', '1'], "error: unknown option '--bogus'\n"],
    [['-p', '1'], "error: unknown option '-p'\n"],
  ])('refuses an option it does not know before the script (%j), and starts nothing', (options, message) => {
    const r = weft(['launch', '-n', '2', ...options, 'args.mjs']);
    expect(r.stderr).toBe(message);
    expect(r.stdout).toBe('');
    expect(r.status).toBe(1);
  });

  it('refuses more threads per process than a config takes, once, and starts nothing', () => {
    const r = weft(['launch', '-n', '2', '-w', '65', 'args.mjs']);
    expect(r.stderr).toBe('weft launch: -w 65: threads are at most 64 per process (rings grow as threads^2); use more processes (-n)\n');
    expect(r.stdout).toBe('');
    expect(r.status).toBe(2);
  });

  it('says there is no such script, once, and starts nothing', () => {
    const r = weft(['launch', '-n', '2', 'missing.mjs']);
    expect(r.stderr).toBe(`weft launch: no script missing.mjs (${join(dir, 'missing.mjs')})\n`);
    expect(r.stdout).toBe('');
    expect(r.status).toBe(2);
  });

  it("passes everything after the script to it, options launch has too", () => {
    const r = weft(['launch', '-n', '1', 'args.mjs', 'input.txt', '--restart', '2', '--bogus']);
    expect(r.stdout).toMatch(/^\[0\] ran -n 1 -p 0 -w 1 -h \S+ input\.txt --restart 2 --bogus\n$/);
    expect(r.status).toBe(0);
  });
});

describe('weft keys, given a mistake', () => {
  it('says the folder cannot be made, naming it, prefixed like its other errors', () => {
    writeFileSync(join(dir, 'a-file'), '');
    const r = weft(['keys', '-n', '1', 'a-file/keys']);
    expect(r.stderr).toBe("weft keys: cannot make the folder a-file/keys: ENOTDIR: not a directory, mkdir 'a-file/keys'\n");
    expect(r.stdout).toBe('');
    expect(r.status).toBe(1);
  });
});

describe('weft worker, given a mistake', () => {
  it.each([
    ['a URL that is not amqp://', ['--amqp', 'notaurl', '--operations', './args.mjs'], /^weft worker: WorkerRuntime\.amqp option url must be an amqp:\/\/ or amqps:\/\/ URL, got "notaurl"\n$/],
    ['operations that cannot be imported', ['--amqp', 'amqp://127.0.0.1:1', '--operations', './missing.mjs', '--threads', '1'], /^weft worker: worker 0 failed to start: cannot import operations module file:.*missing\.mjs: Cannot find module .*\n$/],
    ['a broker out of reach', ['--amqp', 'amqp://127.0.0.1:1', '--operations', './no-operations.mjs', '--threads', '1', '--connect-timeout', '1000', '-q'], /^weft worker: cannot reach the AMQP broker at amqp:\/\/127\.0\.0\.1:1 within 1000 ms: connect ECONNREFUSED 127\.0\.0\.1:1\n$/],
  ])('says what is wrong with %s in one line, exit 2, no stack', (_, args, message) => {
    writeFileSync(join(dir, 'no-operations.mjs'), 'export {};\n');
    const r = weft(['worker', ...args]);
    expect(r.stderr).toMatch(message);
    expect(r.status).toBe(2);
  });
});
