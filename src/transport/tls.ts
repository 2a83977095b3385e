// Mutual TLS around the cluster's connections (Config.cluster({ tls })):
// both sides present a certificate, and each judges the other's before it
// writes a byte of the cluster (certificates.ts: signed by the cluster's
// CA, inside its validity window, not a CA certificate, not revoked), so
// only holders of a key the CA signed connect, and the bytes are
// encrypted. The weft handshake and the frames run inside unchanged. Host
// names are not checked: the CA is private to the cluster, and the process
// index is what matters. A certificate made by `weft keys` names its
// process ("weft process <i>"), and a peer must claim exactly that index;
// a certificate without that name may take any index.

import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createSecureContext, TLSSocket } from 'node:tls';
import { certificateProblem, processNamed, trustOf, type TlsFiles } from './certificates.ts';
import { REFUSAL_GRACE_MS, refusal } from './handshake-messages.ts';
import { HandshakeError } from '../errors.ts';

export { checkTls, tlsFileNames, tlsFromDir, type TlsFiles } from './certificates.ts';

const TLS_HANDSHAKE_TIMEOUT_MS = 5_000;

export interface ListenHandlers {
  /** A TCP connection arrived (before any TLS handshake). */
  connection: (raw: Socket) => void;
  /** The connection is ready for the weft handshake (after TLS, when used). */
  secure: (socket: Socket) => void;
  /** The TLS handshake failed (a timeout, a peer that is not TLS 1.3), or the peer's certificate was refused (it was told why). */
  tlsError: (from: string, error: Error) => void;
  /** A peer that does not speak TLS reached a TLS listener: it is told so, in plain. */
  plain: (raw: Socket, from: string) => void;
}

/** The first byte of a TLS connection: a handshake record. */
const TLS_HANDSHAKE_RECORD = 0x16;

/** Listens on host:port, plain or TLS; rejects when the address cannot be used. */
export function listen(host: string, port: number, tls: TlsFiles | undefined, on: ListenHandlers): Promise<Server> {
  const context = tls !== undefined ? createSecureContext({ ...tls, minVersion: 'TLSv1.3' }) : undefined;
  // Paused on connect, so a TLS listener can look at the first bytes before
  // TLS reads them: a plain weft peer gets a reason it can read, rather
  // than a close that looks like a blip and is retried until its deadline.
  const server = createTcpServer({ pauseOnConnect: true }, (raw) => {
    on.connection(raw);
    if (context === undefined) {
      raw.resume();
      on.secure(raw);
      return;
    }
    const from = `${raw.remoteAddress}:${raw.remotePort}`;
    raw.on('error', () => {}); // reported by the TLS socket, or as a close
    let settled = false;
    const failed = (e: Error): void => {
      clearTimeout(timer);
      if (!settled) on.tlsError(from, e);
      settled = true;
    };
    // From the connection on, silence included: a TLS handshake has as long as a weft one.
    const timer = setTimeout(() => {
      failed(new HandshakeError(`no TLS handshake within ${TLS_HANDSHAKE_TIMEOUT_MS} ms`, false));
      raw.destroy();
    }, TLS_HANDSHAKE_TIMEOUT_MS);
    raw.once('close', () => failed(new HandshakeError('the peer closed the connection during the TLS handshake', false)));
    raw.once('readable', () => {
      const first: Buffer | null = raw.read();
      if (first === null) return; // closed before a byte
      raw.unshift(first);
      if (first[0] !== TLS_HANDSHAKE_RECORD) {
        settled = true;
        clearTimeout(timer);
        on.plain(raw, from);
        return;
      }
      // A TLSSocket over a socket with bytes already read takes those
      // first. It does not reject: a server socket made this way never
      // reads OpenSSL's verdict (rejectUnauthorized would not stop a
      // stranger), so the certificate is judged here, before anything of
      // the cluster is written, and a refused peer is told why.
      const socket = new TLSSocket(raw, { isServer: true, secureContext: context, requestCert: true, rejectUnauthorized: false });
      socket.once('error', failed);
      socket.once('secure', () => {
        socket.off('error', failed);
        const problem = certificateProblem(socket.getPeerX509Certificate(), trustOf(tls!));
        if (problem !== undefined) {
          socket.once('error', () => {}); // the peer may reset first: it is refused either way
          socket.end(refusal(problem), () => socket.destroy());
          setTimeout(() => socket.destroy(), REFUSAL_GRACE_MS).unref();
          return failed(new HandshakeError(problem, true));
        }
        clearTimeout(timer);
        settled = true;
        on.secure(socket);
      });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** The process index a `weft keys` certificate names, for a TLS socket; undefined otherwise. */
export function certifiedProcess(socket: Socket): number | undefined {
  return socket instanceof TLSSocket ? processNamed(socket.getPeerX509Certificate()?.subject) : undefined;
}

/**
 * Whether an error is TLS itself saying no (an alert, a peer that does not
 * speak TLS 1.3): an answer, which retrying cannot change, unlike a reset.
 * Certificates are refused by certificates.ts, not by TLS.
 */
export function isTlsRefusal(error: Error): boolean {
  return ((error as NodeJS.ErrnoException).code ?? '').startsWith('ERR_SSL_');
}
