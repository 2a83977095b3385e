// Connecting the processes of a cluster: process i listens on addresses[i]
// and dials every process j < i, so each pair has exactly one connection and
// nobody needs to agree on who goes first. Dialling retries with backoff
// until an overall deadline, because peers start in any order. The listener
// keeps accepting after the mesh is complete, only to refuse strangers: a
// stray, hostile or duplicate connection is closed and logged, and the
// cluster runs on unaffected.

import { createServer, connect, type Server, type Socket } from 'node:net';
import { handshake, HandshakeError, type Identity } from './handshake.ts';
import { parseAddress } from './address.ts';
import { WeftError } from '../errors.ts';

export interface MeshOptions extends Identity {
  addresses: string[];
  connectTimeoutMs: number;
  /** Where refused connections are reported. */
  log: (line: string) => void;
}

export interface Link {
  socket: Socket;
  /** Bytes read past the handshake: the start of the frame stream. */
  rest: Buffer;
  /** A socket error between the handshake and the router taking the link. */
  error?: Error;
}

export interface Mesh {
  /** One link per process, undefined at our own index. */
  links: (Link | undefined)[];
  server: Server;
}

/** Could not build the mesh: a peer unreachable, or refused us. */
export class ConnectError extends WeftError {
  override name = 'ConnectError';
}

const HANDSHAKE_TIMEOUT_MS = 5_000;

export async function connectMesh(o: MeshOptions): Promise<Mesh> {
  const links: (Link | undefined)[] = new Array(o.processes).fill(undefined);
  const { host, port } = parseAddress(o.addresses[o.process]!);
  let complete!: () => void;
  const allIn = new Promise<void>((r) => (complete = r));
  const missing = (): number[] => links.flatMap((l, i) => (l === undefined && i !== o.process ? [i] : []));
  const settle = (): void => {
    if (missing().length === 0) complete();
  };

  const server = createServer((socket) => {
    socket.setNoDelay(true);
    const from = `${socket.remoteAddress}:${socket.remotePort}`;
    const expect = (peer: number): string | undefined => {
      if (peer < o.process) return `process ${peer} is dialled by ${o.process}, it must not dial in`;
      if (links[peer] !== undefined) return `duplicate process index ${peer}: it is already connected`;
      return undefined;
    };
    handshake(socket, o, expect, HANDSHAKE_TIMEOUT_MS).then(
      ({ process, rest }) => {
        // Two dialers may claim one index at once; the first to finish wins.
        if (links[process] !== undefined) {
          o.log(`weft: process ${o.process} refused a connection from ${from}: duplicate process index ${process}`);
          socket.destroy();
          return;
        }
        links[process] = park(socket, rest);
        settle();
      },
      (e: Error) => o.log(`weft: process ${o.process} refused a connection from ${from}: ${e.message}`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new ConnectError(`process ${o.process} cannot listen on ${host}:${port}: ${e.message}`, { cause: e })));
    server.listen(port, host, () => resolve());
  });
  server.on('error', (e) => o.log(`weft: listener error: ${e.message}`));

  const deadline = Date.now() + o.connectTimeoutMs;
  try {
    const dials = [];
    for (let j = 0; j < o.process; j++) {
      dials.push(dial(o, j, deadline).then((link) => {
        links[j] = link;
        settle();
      }));
    }
    settle();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const who = missing().map((i) => `process ${i} (${o.addresses[i]})`).join(', ');
        reject(new ConnectError(`process ${o.process}: no connection from ${who} within ${o.connectTimeoutMs} ms`));
      }, Math.max(0, deadline - Date.now()));
    });
    try {
      await Promise.race([Promise.all([...dials, allIn]), late]);
    } finally {
      clearTimeout(timer);
    }
  } catch (error) {
    server.close();
    for (const l of links) l?.socket.destroy();
    throw error;
  }
  return { links, server };
}

/**
 * A connected link waits, paused, until the router takes it (once the whole
 * mesh is up). A reset in that gap must not be an uncaught 'error' that
 * kills the process with a bare ECONNRESET: it is recorded, and the router
 * reports the peer lost when it attaches.
 */
function park(socket: Socket, rest: Buffer): Link {
  const link: Link = { socket, rest };
  socket.once('error', (e) => (link.error ??= e));
  return link;
}

async function dial(o: MeshOptions, j: number, deadline: number): Promise<Link> {
  const address = o.addresses[j]!;
  const { host, port } = parseAddress(address);
  let delay = 20;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    let socket: Socket;
    try {
      socket = await new Promise<Socket>((resolve, reject) => {
        const s = connect({ host, port, noDelay: true });
        s.once('connect', () => {
          s.off('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      });
    } catch (e) {
      last = (e as Error).message;
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
      delay = Math.min(delay * 2, 500);
      continue;
    }
    const expect = (peer: number): string | undefined => (peer === j ? undefined : `dialled process ${j} at ${address} but reached process ${peer}`);
    try {
      const { rest } = await handshake(socket, o, expect, HANDSHAKE_TIMEOUT_MS);
      return park(socket, rest);
    } catch (e) {
      // A refusal is an answer (wrong secret, wrong cluster): retrying cannot help.
      if (e instanceof HandshakeError) throw new ConnectError(`process ${o.process} cannot join process ${j} at ${address}: ${e.message}`, { cause: e });
      throw e;
    }
  }
  throw new ConnectError(`process ${o.process} cannot reach process ${j} at ${address} within ${o.connectTimeoutMs} ms: ${last}`);
}
