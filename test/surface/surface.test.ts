// Pins weft's public surface: an export or a public member added or removed
// by accident fails here. A deliberate change updates surface.txt in the same
// commit, where a reviewer sees it (`WEFT_UPDATE_SURFACE=1 npx vitest run
// test/surface` rewrites it).

import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { publicSurface } from './surface.ts';

const PINNED = new URL('./surface.txt', import.meta.url);

describe('the public surface', () => {
  it('is exactly the pinned list of exports and their public members', () => {
    const actual = publicSurface();
    if (process.env.WEFT_UPDATE_SURFACE === '1') writeFileSync(PINNED, `${actual.join('\n')}\n`);
    const pinned = readFileSync(PINNED, 'utf8').trimEnd().split('\n');
    expect(actual).toEqual(pinned);
  }, 60_000);
});
