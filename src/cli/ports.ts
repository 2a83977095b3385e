// Ports for a local cluster, found free on 127.0.0.1 and handed to processes
// that bind them seconds later (once node has started).
//
// Why below the ephemeral range: the kernel takes ports from that range for
// listen(0) and for the local end of every outgoing connection, so a port
// found there by listen(0) may be taken by any connection made meanwhile
// (on a busy machine, dozens a second) and the process that should listen
// on it fails. Ports below the range are only ever taken on purpose: a
// random one checked free by binding it stays free unless another program
// picks the very same port. Where the range is unknown (not Linux) or
// leaves too little room below it, listen(0) it is, race and all.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** At most this many ports below the range: enough that two callers at once rarely draw the same one. */
const SPAN = 12_000;
/** The ports below this are the well-known ones, often privileged. */
const LOWEST = 1024;
/** Less room than this below the range, and draws would collide too often. */
const LEAST_SPAN = 2_000;
/** Probes per port wanted before giving up on the range (every one taken, or refused). */
const PROBES_PER_PORT = 50;

/** Where freePorts draws from: [low, high), or undefined for listen(0). */
export function portRange(): { low: number; high: number } | undefined {
  let floor: number;
  try {
    floor = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(floor)) return undefined;
  const low = Math.max(LOWEST, floor - SPAN);
  return floor - low >= LEAST_SPAN ? { low, high: floor } : undefined;
}

/**
 * Binds `port` (0: any) on 127.0.0.1 and closes it again: the port bound,
 * 'taken' if something holds it, 'refused' if this process may not bind it.
 */
function probe(port: number): Promise<number | 'taken' | 'refused'> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') resolve('taken');
      else if (error.code === 'EACCES') resolve('refused');
      else reject(error);
    });
    s.listen(port, '127.0.0.1', () => {
      const bound = (s.address() as { port: number }).port;
      s.close(() => resolve(bound));
    });
  });
}

/**
 * `n` distinct ports free on 127.0.0.1 right now: drawn below the ephemeral
 * range where it is known (see above), else, or if the range gives too
 * few (every port tried was taken, or refused to this process), from
 * listen(0). Another program may still take one before it is used: a
 * process that then cannot listen fails with a clear ConnectError.
 */
export async function freePorts(n: number): Promise<number[]> {
  const range = portRange();
  const ports: number[] = [];
  let probes = range === undefined ? 0 : PROBES_PER_PORT * n;
  while (ports.length < n) {
    const drawn = probes-- > 0 ? range!.low + Math.floor(Math.random() * (range!.high - range!.low)) : 0;
    const port = await probe(drawn);
    if (port === 'refused') probes = 0;
    else if (port !== 'taken' && !ports.includes(port)) ports.push(port);
  }
  return ports;
}
