// `Runtime.cluster`: one script, two processes over TCP on loopback.

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { freePorts } from '../../src/cli/launch.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Config } from '../../src/allocator/index.ts';
import { IndexedStream, Runtime } from '../../src/runtime/index.ts';
import { FibAt, Sum } from './fixtures/operations.ts';

const script = fileURLToPath(new URL('./fixtures/cluster-main.ts', import.meta.url));


function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('Runtime.cluster', () => {
  it('runs directives on 2 processes of 2 threads, process 0 orchestrating', async () => {
    const hostfile = join(mkdtempSync(join(tmpdir(), 'weft-runtime-cluster-')), 'hosts');
    writeFileSync(hostfile, (await freePorts(2)).map((port) => `127.0.0.1:${port}\n`).join(''));
    const [orchestrator, server] = await Promise.all([0, 1].map((index) => run(['-w', '2', '-n', '2', '-p', String(index), '-h', hostfile])) as [
      ReturnType<typeof run>,
      ReturnType<typeof run>,
    ]);
    expect(orchestrator.code, orchestrator.stderr).toBe(0);
    expect(server.code, server.stderr).toBe(0);
    expect(JSON.parse(orchestrator.stdout.trim().split('\n').at(-1)!)).toEqual({ fibSum: 143, mappedInOrder: true, concatInOrder: true });
    expect(server.stdout.trim()).toBe('');
  });

  it('runs in one process on Config.process', async () => {
    const runtime = (await Runtime.cluster(Config.process(3), {
      operations: new URL('./fixtures/operations.ts', import.meta.url),
    }))!;
    try {
      expect(await IndexedStream.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).map(FibAt).fold(Sum).run(runtime)).toBe(143);
    } finally {
      await runtime.close();
    }
  });
});
