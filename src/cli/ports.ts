// Ports for a local cluster, found free on 127.0.0.1 and handed to processes
// that bind them seconds later (once node has started).
//
// Why below the ephemeral range: the kernel takes ports from that range for
// listen(0) and for the local end of every outgoing connection, so a port
// found there by listen(0) may be taken by any connection made meanwhile
// (on a busy machine, dozens a second) and the process that should listen
// on it fails. Ports below the range are only ever taken on purpose: a
// random one checked free by binding it stays free unless another program
// picks the very same port.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** How far below the ephemeral range ports are drawn from. */
const SPAN = 12_000;
const LOWEST = 1024;

/** The first port of the kernel's ephemeral range (Linux), or undefined where it cannot be read. */
function ephemeralFloor(): number | undefined {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low - SPAN >= LOWEST ? low : undefined;
  } catch {
    return undefined;
  }
}

/** Binds `port` (0: any) on 127.0.0.1 and closes it again; the port bound, or undefined if it was taken. */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' || error.code === 'EACCES' ? resolve(undefined) : reject(error)));
    s.listen(port, '127.0.0.1', () => {
      const bound = (s.address() as { port: number }).port;
      s.close(() => resolve(bound));
    });
  });
}

/**
 * `n` distinct ports free on 127.0.0.1 right now, below the ephemeral range
 * where it is known (else from listen(0)). Another program may still take
 * one before it is used: a process that then cannot listen fails with a
 * clear ConnectError.
 */
export async function freePorts(n: number): Promise<number[]> {
  const floor = ephemeralFloor();
  const ports: number[] = [];
  while (ports.length < n) {
    const port = await probe(floor === undefined ? 0 : floor - SPAN + Math.floor(Math.random() * SPAN));
    if (port !== undefined && !ports.includes(port)) ports.push(port);
  }
  return ports;
}
