// Connecting the processes of a cluster: process i listens on addresses[i]
// and dials every process j < i, so each pair has exactly one connection and
// nobody needs to agree on who goes first. Dialling retries with backoff
// until an overall deadline, because peers start in any order and a
// connection may break during its handshake (a blip); only a refusal, an
// answer, ends it early. The listener keeps accepting after the mesh is
// complete, only to refuse strangers: a stray, hostile or duplicate
// connection is closed and counted in the refusal log, a bounded number may
// sit in their handshake at once (the oldest is dropped first), and the
// cluster runs on unaffected.
//
// Spares are the exception to waiting: the mesh is complete without them.
// The same rule decides who dials, so a spare dials the processes below it
// when it starts, and a process above a spare keeps dialling it in the
// background until it answers. Each spare connection, whenever it comes,
// is handed to the mesh's join handler, until refuseJoins() (the cluster
// is finishing): from then a spare is refused, and nobody dials one.
//
// A process lost while the cluster continues (onPeerLoss 'continue') is
// taken back the same way: restarted with the same command line, it dials
// the processes below it and those above it dial it again, and its
// connection goes to the join handler like a spare's. A process claiming
// the index of one still connected is refused, and told so. A replacement
// (Config.cluster replaces) takes a lost process's index from another
// address: the survivors above it dial only the lost one's address, so it
// dials every process, and a lost index is the one that may dial upwards.

import type { Socket } from 'node:net';
import { dial, dialSpare, HANDSHAKE_TIMEOUT_MS, park, STILL_CONNECTED } from './dial.ts';
import { handshake } from './handshake.ts';
import { refusal, type Identity } from './handshake-messages.ts';
import { parseAddress } from './address.ts';
import { RefusalLog } from './refusals.ts';
import { certifiedProcess, listen, type TlsFiles } from './tls.ts';
import type { SocketReads } from './reads.ts';
import { ConnectError } from '../errors.ts';

export interface MeshOptions extends Identity {
  addresses: string[];
  connectTimeoutMs: number;
  /** Mutual TLS around every connection, when given. */
  tls: TlsFiles | undefined;
  /** Where refused connections are reported. */
  log: (line: string) => void;
  /** Process indices that may join later (Config.cluster spares): nobody waits for them. */
  spares: readonly number[];
  /** We take a lost process's place from another address (addresses[process] is ours): we dial everyone. */
  replacing: boolean;
}

export interface Link {
  socket: Socket;
  /** Bytes read past the handshake: the start of the frame stream. */
  rest: Buffer;
  /** A socket error between the handshake and the router taking the link. */
  error?: Error;
  /** A link we dialled reads into buffers the router gives (reads.ts); an accepted one emits 'data'. */
  reads?: SocketReads;
}

export interface Mesh {
  /** One link per process, undefined at our own index and at spares'. */
  links: (Link | undefined)[];
  /** Where spare connections go, as they come (those that came before are handed over at once). */
  onJoin(handler: (process: number, link: Link) => void): void;
  /** From now on a spare is refused ("the cluster is finishing"), and not dialled. */
  refuseJoins(): void;
  /** Process `process` was lost: it may connect again (restarted), and joins like a spare when it does. */
  lost(process: number): void;
  /** Stops accepting and dialling, and logs what the refusal log still holds. */
  close(): void;
}

const NOT_TLS = 'this cluster requires mutual TLS: the peer does not speak TLS';
/**
 * Connections the listener keeps in their handshake at once, beyond one per
 * peer: past it the oldest is dropped, so a stranger opening connections
 * and saying nothing holds a bounded number of sockets (each for at most
 * HANDSHAKE_TIMEOUT_MS) and a real peer still gets in (a dropped peer redials).
 */
export const MAX_HANDSHAKING = 64;

export async function connectMesh(o: MeshOptions): Promise<Mesh> {
  const links: (Link | undefined)[] = new Array(o.processes).fill(undefined);
  const { host, port } = parseAddress(o.addresses[o.process]!);
  const refusals = new RefusalLog(`weft: process ${o.process}`, o.log);
  let complete!: () => void;
  const allIn = new Promise<void>((r) => (complete = r));
  /** Lost processes that may come back (their connection is a join). */
  const returning = new Set<number>();
  const spare = (i: number): boolean => o.spares.includes(i) || returning.has(i);
  const missing = (): number[] => links.flatMap((l, i) => (l === undefined && i !== o.process && !spare(i) ? [i] : []));
  const joins = new Joins();
  const settle = (): void => {
    if (missing().length === 0) complete();
  };

  // Connections in their handshake, oldest first, by remote address (the
  // same for the TCP socket and the TLS socket over it).
  const handshaking = new Map<string, Socket>();
  const dropped = new Set<string>();
  const cap = MAX_HANDSHAKING + o.processes;
  const claimed = new Set<number>();
  const admit = (peer: number): string | undefined => {
    // Claimed as soon as admitted, so two diallers with one index cannot both get in.
    if (links[peer] !== undefined || claimed.has(peer)) return `process ${peer} ${STILL_CONNECTED}: a second process cannot take its index`;
    // Below us only a lost process's replacement dials in (the rule is that we dial it).
    if (peer < o.process && !returning.has(peer)) return `process ${peer} is dialled by ${o.process}, it must not dial in`;
    if (spare(peer) && joins.refused) return `${returning.has(peer) ? 'lost' : 'spare'} process ${peer} cannot join: the cluster is finishing`;
    claimed.add(peer);
    return undefined;
  };
  const refused = (from: string, reason: string): void => {
    refusals.refused(from, dropped.delete(from) ? `dropped, the oldest of ${cap} connections still in their handshake` : reason);
  };

  const server = await listen(host, port, o.tls, {
    connection: (raw) => {
      const from = `${raw.remoteAddress}:${raw.remotePort}`;
      handshaking.set(from, raw);
      raw.once('close', () => handshaking.delete(from));
      if (handshaking.size > cap) {
        const [oldest, socket] = handshaking.entries().next().value as [string, Socket];
        handshaking.delete(oldest);
        dropped.add(oldest);
        socket.destroy();
      }
    },
    secure: (socket) => {
      socket.setNoDelay(true);
      const from = `${socket.remoteAddress}:${socket.remotePort}`;
      const certified = certifiedProcess(socket);
      const check = (peer: number): string | undefined =>
        certified !== undefined && certified !== peer ? `its certificate is for process ${certified}, it claims process ${peer}` : admit(peer);
      handshake(socket, o, { admit: check }, HANDSHAKE_TIMEOUT_MS).then(
        ({ process, rest }) => {
          handshaking.delete(from);
          if (spare(process)) return joins.add(process, park(socket, rest));
          links[process] = park(socket, rest);
          settle();
        },
        (e: Error) => refused(from, e.message),
      );
    },
    tlsError: (from, e) => refused(from, `TLS: ${e.message}`),
    plain: (raw, from) => {
      raw.end(refusal(NOT_TLS), () => raw.destroy());
      refused(from, NOT_TLS);
    },
  }).catch((e: Error) => {
    throw new ConnectError(`process ${o.process} cannot listen on ${host}:${port}: ${e.message}`, { cause: e });
  });
  server.on('error', (e) => o.log(`weft: listener error: ${e.message}`));
  const close = (): void => {
    server.close();
    refusals.flush();
    joins.close();
  };

  const deadline = Date.now() + o.connectTimeoutMs;
  try {
    const dials = [];
    for (let j = 0; j < o.processes; j++) {
      if (j === o.process || (j > o.process && !o.replacing)) continue;
      // A replacement listens on its own hostfile line, a spare's: that spare is itself.
      if (o.addresses[j] === o.addresses[o.process]) continue;
      if (spare(j)) {
        void dialSpare(o, j, joins);
        continue;
      }
      dials.push(dial(o, j, deadline).then((link) => {
        links[j] = link;
        settle();
      }));
    }
    settle();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // A process we dial fails with its own reason at this deadline ("process 2 is still connected" says more than silence).
        if (!missing().some((i) => i > o.process && !o.replacing)) return;
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
    close();
    for (const l of links) l?.socket.destroy();
    throw error;
  }
  const lost = (process: number): void => {
    if (joins.closed || joins.refused) return;
    links[process] = undefined;
    claimed.delete(process);
    returning.add(process);
    if (process < o.process) void dialSpare(o, process, joins);
  };
  return { links, close, onJoin: (handler) => joins.handle(handler), refuseJoins: () => (joins.refused = true), lost };
}

/** Spare connections, held until a handler takes them. */
export class Joins {
  refused = false;
  closed = false;
  private handler: ((process: number, link: Link) => void) | undefined;
  private readonly early: [number, Link][] = [];

  add(process: number, link: Link): void {
    if (this.closed || this.refused) {
      link.socket.destroy();
      return;
    }
    if (this.handler !== undefined) this.handler(process, link);
    else this.early.push([process, link]);
  }

  handle(handler: (process: number, link: Link) => void): void {
    this.handler = handler;
    for (const [process, link] of this.early.splice(0)) handler(process, link);
  }

  close(): void {
    this.closed = true;
    for (const [, link] of this.early.splice(0)) link.socket.destroy();
  }
}
