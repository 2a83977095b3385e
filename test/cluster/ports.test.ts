// freePorts: the ports `weft launch` (and these tests) hand to processes
// that bind them seconds later. Below the kernel's ephemeral range no
// outgoing connection takes one meanwhile; this checks they are drawn from
// there and that each can be bound.

import { describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { freePorts, portRange } from '../../src/cli/ports.ts';

const bind = (port: number) =>
  new Promise<Server>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });

describe('freePorts', () => {
  it('gives distinct ports, each of which can be bound on 127.0.0.1', async () => {
    const ports = await freePorts(64);
    expect(new Set(ports).size).toBe(64);
    const servers = await Promise.all(ports.map(bind));
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  });

  const range = portRange();
  it.runIf(range !== undefined)('draws them from below the ephemeral range, where the kernel takes none by itself', async () => {
    for (const port of await freePorts(64)) {
      expect(port).toBeGreaterThanOrEqual(range!.low);
      expect(port).toBeLessThan(range!.high);
    }
  });
});
