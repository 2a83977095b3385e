// Mutual TLS around the cluster's connections (Config.cluster({ tls })):
// both sides present a certificate, and each verifies the other's against
// the cluster's own CA, so only holders of a key signed by that CA connect,
// and the bytes are encrypted. The weft handshake and the frames run inside
// unchanged. Host names are not checked: the CA is private to the cluster,
// and the process index is what matters. A certificate made by `weft keys`
// names its process ("weft process <i>"), and a peer must claim exactly
// that index; a certificate without that name may take any index.

import type { Server, Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

// node:tls, node:crypto and node:net are loaded when first used, not on
// import: node:tls alone costs every weft program, and each worker thread
// that re-runs it, more start-up than the rest of the channels
// (bench/startup.ts).
const tlsModule = () => process.getBuiltinModule('node:tls');
const cryptoModule = () => process.getBuiltinModule('node:crypto');
import { ConfigError, HandshakeError } from '../errors.ts';

export interface TlsFiles {
  /** This process's private key, PEM. */
  key: string | Buffer;
  /** This process's certificate, PEM, signed by `ca`. */
  cert: string | Buffer;
  /** The cluster's CA certificate, PEM: peers must present a certificate it signed. */
  ca: string | Buffer;
}

/** The files `weft keys <dir>` writes, and `tlsFromDir` reads. */
export const tlsFileNames = (process: number) => ({ ca: 'ca.crt', cert: `process-${process}.crt`, key: `process-${process}.key` });

/** Process `process`'s key and certificate and the CA, from a folder made by `weft keys`. */
export function tlsFromDir(dir: string, process: number): TlsFiles {
  const names = tlsFileNames(process);
  const read = (name: string): Buffer => {
    try {
      return readFileSync(join(dir, name));
    } catch (cause) {
      throw new ConfigError(`tls: cannot read ${join(dir, name)} (made by \`weft keys ${dir}\`): ${(cause as Error).message}`, { cause });
    }
  };
  return { ca: read(names.ca), cert: read(names.cert), key: read(names.key) };
}

/**
 * Checks that key, cert and ca are PEM that Node's TLS accepts together,
 * and that a `weft keys` certificate is process `process`'s; a ConfigError
 * otherwise, at configuration rather than at the first connection.
 */
export function checkTls(tls: TlsFiles, process: number): TlsFiles {
  for (const field of ['key', 'cert', 'ca'] as const) {
    const v: unknown = tls?.[field];
    if (!(typeof v === 'string' || Buffer.isBuffer(v)) || v.length === 0) throw new ConfigError(`tls.${field} must be PEM text (a string or a Buffer), got ${typeof v}`);
  }
  let named: number | undefined;
  try {
    tlsModule().createSecureContext({ key: tls.key, cert: tls.cert, ca: tls.ca });
    named = processNamed(new (cryptoModule().X509Certificate)(tls.cert).subject);
  } catch (cause) {
    throw new ConfigError(`tls: key, cert and ca are not usable together: ${(cause as Error).message}`, { cause });
  }
  if (named !== undefined && named !== process) throw new ConfigError(`tls: the certificate is process ${named}'s, this is process ${process}`);
  return { key: tls.key, cert: tls.cert, ca: tls.ca };
}

/** The process a `weft keys` subject names ("CN=weft process <i>", one name per line). */
function processNamed(subject: string | undefined): number | undefined {
  for (const line of subject?.split('\n') ?? []) {
    const m = line.startsWith('CN=') ? COMMON_NAME.exec(line.slice(3)) : null;
    if (m) return Number(m[1]);
  }
  return undefined;
}

const TLS_HANDSHAKE_TIMEOUT_MS = 5_000;
const COMMON_NAME = /^weft process (\d+)$/;

export interface ListenHandlers {
  /** A TCP connection arrived (before any TLS handshake). */
  connection: (raw: Socket) => void;
  /** The connection is ready for the weft handshake (after TLS, when used). */
  secure: (socket: Socket) => void;
  /** The TLS handshake failed: a peer without a certificate of the CA, a timeout. */
  tlsError: (from: string, error: Error) => void;
  /** A peer that does not speak TLS reached a TLS listener: it is told so, in plain. */
  plain: (raw: Socket, from: string) => void;
}

/** The first byte of a TLS connection: a handshake record. */
const TLS_HANDSHAKE_RECORD = 0x16;

/** Listens on host:port, plain or TLS; rejects when the address cannot be used. */
export function listen(host: string, port: number, tls: TlsFiles | undefined, on: ListenHandlers): Promise<Server> {
  const context = tls !== undefined ? tlsModule().createSecureContext({ ...tls, minVersion: 'TLSv1.3' }) : undefined;
  // Paused on connect, so a TLS listener can look at the first bytes before
  // TLS reads them: a plain weft peer gets a reason it can read, rather
  // than a close that looks like a blip and is retried until its deadline.
  const server = process.getBuiltinModule('node:net').createServer({ pauseOnConnect: true }, (raw) => {
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
      // A TLSSocket over a socket with bytes already read takes those first.
      const socket = new (tlsModule().TLSSocket)(raw, { isServer: true, secureContext: context, requestCert: true, rejectUnauthorized: true });
      socket.once('error', failed);
      socket.once('secure', () => {
        clearTimeout(timer);
        settled = true;
        socket.off('error', failed);
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
  if (!(socket instanceof tlsModule().TLSSocket)) return undefined;
  const cn: unknown = socket.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' ? processNamed(`CN=${cn}`) : undefined;
}

/**
 * Whether an error is TLS saying no (a certificate the CA did not sign, no
 * certificate, a peer that does not speak TLS): an answer, which retrying
 * cannot change, unlike a reset.
 */
export function isTlsRefusal(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  return code.startsWith('ERR_SSL_') || /CERT|UNABLE_TO_(GET|VERIFY)|SIGNATURE/.test(code);
}
