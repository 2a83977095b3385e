// `Runtime.cluster`: one script, two processes over TCP on loopback.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { freePorts } from '../../src/cli/ports.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Config } from '../../src/allocator/index.ts';
import { IndexedStream, Runtime } from '../../src/runtime/index.ts';
import { FibAt, Sum } from './fixtures/operations.ts';

const script = fileURLToPath(new URL('./fixtures/cluster-main.ts', import.meta.url));
const cancelScript = fileURLToPath(new URL('./fixtures/cluster-cancel.ts', import.meta.url));
const threadsScript = fileURLToPath(new URL('./fixtures/cluster-threads.ts', import.meta.url));


function run(args: string[], file = script): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.once('error', reject);
    // 'close', not 'exit': the last lines may still be in the pipes at exit.
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('Runtime.cluster', () => {
  it('runs directives on 2 processes of 2 threads, process 0 orchestrating, large outputs in pieces included', async () => {
    const hostfile = join(mkdtempSync(join(tmpdir(), 'weft-runtime-cluster-')), 'hosts');
    writeFileSync(hostfile, (await freePorts(2)).map((port) => `127.0.0.1:${port}\n`).join(''));
    const [orchestrator, server] = await Promise.all([0, 1].map((index) => run(['-w', '2', '-n', '2', '-p', String(index), '-h', hostfile])) as [
      ReturnType<typeof run>,
      ReturnType<typeof run>,
    ]);
    expect(orchestrator.code, orchestrator.stderr).toBe(0);
    expect(server.code, server.stderr).toBe(0);
    expect(JSON.parse(orchestrator.stdout.trim().split('\n').at(-1)!)).toEqual({ fibSum: 143, mappedInOrder: true, concatInOrder: true, largeWhole: true });
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

  it('runs one on each of two threads of a process at once, neither hearing the other', async () => {
    const result = await run([], threadsScript);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout.trim().split('\n').at(-1)!)).toEqual([143, 143]);
  });

  it('on 2 processes: cancellation reaches running tasks, streams stop early and keep order, progress arrives with its index', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-runtime-cluster-cancel-'));
    const hostfile = join(dir, 'hosts');
    writeFileSync(hostfile, (await freePorts(2)).map((port) => `127.0.0.1:${port}\n`).join(''));
    const [orchestrator, server] = await Promise.all([0, 1].map((index) => run(['-w', '2', '-n', '2', '-p', String(index), '-h', hostfile, dir], cancelScript)) as [
      ReturnType<typeof run>,
      ReturnType<typeof run>,
    ]);
    expect(orchestrator.code, orchestrator.stderr).toBe(0);
    expect(server.code, server.stderr).toBe(0);
    const seen = Object.assign({}, ...orchestrator.stdout.trim().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as object));
    const aborts = seen.abortWithin as { error: string; seen: unknown[]; slowestMs: number }[];
    for (const run of aborts) {
      expect(run.error).toBe('AbortError');
      expect(run.seen).toEqual([0, 1, 2].map(() => ({ name: 'TaskCancelledError', message: 'its directive was aborted' })));
    }
    // docs/runtime.md's bound for a cluster: orchestrator -> gateway -> worker.
    const slowest = aborts.map((run) => run.slowestMs);
    expect(Math.min(...slowest), `abort -> ctx.signal seen, slowest task per run: ${slowest.map((ms) => ms.toFixed(1)).join(', ')} ms`).toBeLessThan(100);
    expect(seen.timeoutNoOverlap).toEqual({ outputs: [0, 1, 2, 3], overlap: null });
    expect(seen.breakEarly.seen).toBe(10);
    expect(seen.breakEarly.closed).toBe(true);
    expect(seen.breakEarly.pulledAtBreak).toBeLessThan(100_000);
    expect(seen.breakEarly.pulledLater).toBe(seen.breakEarly.pulledAtBreak);
    expect(seen.breakEarly.afterOk).toBe(true);
    expect(seen.breakWhileRunning.started).toBeGreaterThan(0);
    expect(seen.breakWhileRunning.aborted).toBe(seen.breakWhileRunning.started);
    expect(seen.ordering).toEqual({ inOrder: true, allOnce: true });
    expect(seen.chattyProgress.outputs).toEqual([0, 1, 2, 3]);
    expect(seen.chattyProgress.indicesMatch).toBe(true);
    expect(seen.chattyProgress.lastK).toEqual([0, 1, 2, 3].map(() => 99_999));
    // A worker thread in another process cannot be terminated: the spinning one is set aside, the next directive completes on the others.
    expect(seen.abortSpinning).toEqual({ error: 'AbortError', nextOk: true });
    rmSync(dir, { recursive: true, force: true });
  });
});
