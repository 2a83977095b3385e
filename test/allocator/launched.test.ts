// Importing weft changes nothing in the process: `weft launch`'s variable
// stays for the script to pass on or not, and no exit hook is added.

import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const dist = new URL('../../dist/index.js', import.meta.url).href;

describe('importing weft', () => {
  it('neither deletes WEFT_LAUNCHED nor adds an exit hook', () => {
    const program = `const before = process.listenerCount('exit');
await import(${JSON.stringify(dist)});
console.log(JSON.stringify({ env: process.env.WEFT_LAUNCHED, hooks: process.listenerCount('exit') - before }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '--eval', program], { encoding: 'utf8', env: { ...process.env, WEFT_LAUNCHED: '0/2/1' }, timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ env: '0/2/1', hooks: 0 });
  });
});
