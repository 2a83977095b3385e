// The runtime's default operations module is the main script: run SPEC's
// example as a real program and check that the workers find its operations
// without running its directive (or a runtime of their own).

import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./fixtures/spec-example.ts', import.meta.url));

describe('Runtime.inMemory with the main script as operations module', () => {
  it('runs the SPEC example (fib 1..10 summed) and prints 143 once', async () => {
    const { stdout, code } = await new Promise<{ stdout: string; code: number | null }>((resolve) => {
      const child = execFile(process.execPath, ['--import', 'tsx', script], { timeout: 60_000 }, (error, out) => resolve({ stdout: out, code: error ? (error.code as number) ?? 1 : 0 }));
      child.stdin?.end();
    });
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toEqual(['total 143']);
  });
});
