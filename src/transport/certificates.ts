// The cluster's TLS material and the one judgement of a certificate that
// both ends of a connection, and Config, apply: signed by the cluster's CA
// (directly), inside its validity window, not a CA certificate, not
// revoked by the CA's list. Node's TLS does not apply this for us: a
// server socket made from a plain socket never reads OpenSSL's verdict,
// and OpenSSL would take a CA certificate as a leaf. So both ends run
// TLS without rejecting and judge the certificate here before a byte of
// the cluster is written (tls.ts, dial.ts); every refusal has a reason.

import type { KeyObject, X509Certificate } from 'node:crypto';
import { readCrl, serialKey } from './crl.ts';
import { ConfigError } from '../errors.ts';

// node:crypto and node:tls are loaded when a certificate is first read,
// not on import: node:tls alone costs every weft program (and each worker
// thread that re-runs it) more start-up than the channels (bench/startup.ts).
const cryptoModule = () => process.getBuiltinModule('node:crypto');
const tlsModule = () => process.getBuiltinModule('node:tls');
// node:fs as Node holds it: an `import from 'node:fs'` makes an ES module
// of every export, fs.promises included, which costs each thread ms.
const { existsSync, readFileSync, statSync } = process.getBuiltinModule('node:fs');
const { join } = process.getBuiltinModule('node:path');

export interface TlsFiles {
  /** This process's private key, PEM. */
  key: string | Buffer;
  /** This process's certificate, PEM, signed by `ca`. */
  cert: string | Buffer;
  /** The cluster's CA certificate, PEM: peers must present a certificate it signed. */
  ca: string | Buffer;
  /** The CA's revocation list (PEM, `weft keys revoke`): certificates it names are refused. */
  crl?: string | Buffer | undefined;
  /**
   * A file the revocation list is read from again whenever it changes
   * (a connection at a time), so `weft keys revoke` reaches running
   * processes. `tlsFromDir` (`--tls-dir`, `WEFT_TLS_DIR`) sets it to the
   * folder's crl.pem.
   */
  crlFile?: string | undefined;
}

/** The files `weft keys <dir>` writes, and `tlsFromDir` reads. */
export const tlsFileNames = (process: number) => ({ ca: 'ca.crt', cert: `process-${process}.crt`, key: `process-${process}.key` });
/** The revocation list `weft keys revoke` writes beside them; read when present. */
export const CRL_FILE = 'crl.pem';
/** A certificate that expires within this long is warned about when the config is made. */
export const EXPIRY_WARNING_MS = 30 * 86_400_000;

/** What a peer's certificate is judged against. */
export interface Trust {
  cas: X509Certificate[];
  /** Revoked serials (serialKey) and when. */
  revoked: Map<string, Date>;
  /** The crlFile's modification time and size when `revoked` was read from it. */
  stamp?: string;
}

/** How each piece is named in errors: the file it came from, or the field. */
type Labels = Record<Exclude<keyof TlsFiles, 'crlFile'>, string>;
const FIELDS: Labels = { key: 'tls.key', cert: 'tls.cert', ca: 'tls.ca', crl: 'tls.crl' };

/** Process `process`'s key and certificate, the CA and its CRL when there is one, from a folder made by `weft keys`; checked (checkTls). */
export function tlsFromDir(dir: string, process: number): TlsFiles {
  const names = tlsFileNames(process);
  const read = (name: string): Buffer => {
    try {
      return readFileSync(join(dir, name));
    } catch (cause) {
      throw new ConfigError(`tls: cannot read ${join(dir, name)} (made by \`weft keys ${dir}\`): ${(cause as Error).message}`, { cause });
    }
  };
  const crl = existsSync(join(dir, CRL_FILE)) ? { crl: read(CRL_FILE) } : {};
  const files = { ca: read(names.ca), cert: read(names.cert), key: read(names.key), ...crl, crlFile: join(dir, CRL_FILE) };
  const at = (name: string) => join(dir, name);
  return checkTls(files, process, { key: at(names.key), cert: at(names.cert), ca: at(names.ca), crl: at(CRL_FILE) });
}

/** Material already checked, and for which process: Config takes it as it is. */
const vetted = new WeakMap<TlsFiles, number>();
const trusts = new WeakMap<TlsFiles, Trust>();

/**
 * Checks TLS material when the config is made, with a ConfigError naming
 * the file (or field) and what is wrong: each piece parses, the CA is a
 * CA, the certificate is not, the CA signed it, both are inside their
 * validity windows, the key is the certificate's, the CA signed the CRL
 * and the CRL does not revoke this certificate, a `weft keys` certificate
 * is this process's. A certificate that expires within 30 days is warned
 * about (process.emitWarning).
 */
export function checkTls(tls: TlsFiles, process: number, labels: Labels = FIELDS): TlsFiles {
  if (tls !== null && typeof tls === 'object' && vetted.get(tls) === process) return tls;
  for (const field of ['key', 'cert', 'ca'] as const) {
    const v: unknown = tls?.[field];
    if (!(typeof v === 'string' || Buffer.isBuffer(v)) || v.length === 0) throw new ConfigError(`tls.${field} must be PEM text (a string or a Buffer), got ${typeof v}`);
  }
  const crl: unknown = tls.crl;
  if (crl !== undefined && !(typeof crl === 'string' || Buffer.isBuffer(crl))) throw new ConfigError(`tls.crl must be PEM text (a string or a Buffer) or absent, got ${typeof crl}`);
  if (tls.crlFile !== undefined && typeof tls.crlFile !== 'string') throw new ConfigError(`tls.crlFile must be a path or absent, got ${typeof tls.crlFile}`);
  const fail = failing(labels);
  const now = Date.now();
  const trust = trustFrom(tls, fail, now);
  const cert = parse(String(tls.cert), (e) => fail('cert', `not a readable certificate: ${e.message}`, e));
  let key: KeyObject | undefined;
  try {
    key = cryptoModule().createPrivateKey(tls.key);
  } catch (e) {
    fail('key', `not a readable private key: ${(e as Error).message}`, e);
  }
  const problem = certificateProblem(cert, trust, now);
  if (problem !== undefined) fail('cert', problem);
  if (!cert.checkPrivateKey(key!)) fail('key', `not the key of ${labels.cert}`);
  const named = processNamed(cert.subject);
  if (named !== undefined && named !== process) fail('cert', `the certificate is process ${named}'s, this is process ${process}`);
  const files: TlsFiles = {
    key: tls.key, cert: tls.cert, ca: tls.ca,
    ...(crl !== undefined ? { crl: crl as string | Buffer } : {}),
    ...(tls.crlFile !== undefined ? { crlFile: tls.crlFile } : {}),
  };
  try {
    tlsModule().createSecureContext(files);
  } catch (cause) {
    throw new ConfigError(`tls: key, cert, ca and crl are not usable together: ${(cause as Error).message}`, { cause });
  }
  const left = Date.parse(cert.validTo) - now;
  if (left < EXPIRY_WARNING_MS) {
    globalThis.process.emitWarning(`tls: ${labels.cert} expires on ${cert.validTo} (in ${Math.floor(left / 86_400_000)} days): make new keys before then (weft keys)`, 'WeftWarning');
  }
  vetted.set(files, process);
  trusts.set(files, trust);
  return files;
}

type Fail = (field: keyof Labels, why: string, cause?: unknown) => never;

const failing = (labels: Labels): Fail => (field, why, cause) => {
  throw new ConfigError(`tls: ${labels[field]}: ${why}`, { cause });
};

/** The CA certificates (each a CA, inside its window) and the revoked serials of the CRL they signed. */
function trustFrom(tls: TlsFiles, fail: Fail, now: number): Trust {
  const pems = String(tls.ca).match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0) fail('ca', 'not a PEM certificate (no -----BEGIN CERTIFICATE-----)');
  const cas = pems.map((pem) => parse(pem, (e) => fail('ca', `not a readable certificate: ${e.message}`, e)));
  for (const ca of cas) {
    if (!ca.ca) fail('ca', `${ca.subject.replace(/\n/g, ', ')} is not a CA certificate`);
    const window = outsideWindow(ca, now);
    if (window !== undefined) fail('ca', `the CA's ${window}`);
  }
  if (tls.crl === undefined) return { cas, revoked: new Map() };
  try {
    return { cas, revoked: revokedBy(tls.crl, cas) };
  } catch (e) {
    return fail('crl', (e as Error).message, e);
  }
}

/** The serials a CRL revokes, after checking the CA signed it (the first CA: `weft keys` makes one per cluster). */
function revokedBy(crl: string | Buffer, cas: X509Certificate[]): Map<string, Date> {
  return new Map(readCrl(crl, cas[0]!).revoked.map((r) => [r.serial, r.date]));
}

/**
 * The trust with the list crlFile holds now, read again only when the file
 * changed. A list that is missing or does not read (not the CA's) leaves
 * the one we have: revocations already seen are never dropped by a bad
 * copy, and a good one is taken when it comes.
 */
function fresher(trust: Trust, path: string): Trust {
  let stamp: string;
  try {
    const st = statSync(path);
    stamp = `${st.mtimeMs}:${st.size}`;
  } catch {
    return trust;
  }
  if (stamp === trust.stamp) return trust;
  try {
    return { cas: trust.cas, revoked: revokedBy(readFileSync(path), trust.cas), stamp };
  } catch {
    return { ...trust, stamp };
  }
}

function parse(pem: string, failed: (e: Error) => never): X509Certificate {
  try {
    return new (cryptoModule().X509Certificate)(pem);
  } catch (e) {
    return failed(e as Error);
  }
}

/** Why `cert` is outside its validity window at `now`, or undefined. */
function outsideWindow(cert: X509Certificate, now: number): string | undefined {
  if (now < Date.parse(cert.validFrom)) return `certificate not valid before ${cert.validFrom}`;
  if (now > Date.parse(cert.validTo)) return `certificate expired on ${cert.validTo}`;
  return undefined;
}

/**
 * Why `cert` is not a member's certificate, or undefined: the one
 * judgement both ends and Config apply. The CA must have signed the
 * certificate itself (no intermediates: only the CA's key makes members).
 */
export function certificateProblem(cert: X509Certificate | undefined, trust: Trust, now = Date.now()): string | undefined {
  if (cert === undefined) return 'no certificate';
  const issuer = trust.cas.find((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));
  if (issuer === undefined) return 'certificate not signed by the cluster CA';
  const window = outsideWindow(cert, now) ?? outsideWindow(issuer, now);
  if (window !== undefined) return window;
  if (cert.ca) return 'a CA certificate, not a process\'s';
  const revoked = trust.revoked.get(serialKey(cert.serialNumber));
  if (revoked !== undefined) return `certificate revoked on ${revoked.toUTCString()}`;
  return undefined;
}

/** What a peer is judged against now, for material checkTls passed (parsed once per object, the list again when its file changes). */
export function trustOf(tls: TlsFiles): Trust {
  let trust = trusts.get(tls) ?? trustFrom(tls, failing(FIELDS), Date.now());
  if (tls.crlFile !== undefined) trust = fresher(trust, tls.crlFile);
  trusts.set(tls, trust);
  return trust;
}

/** The process a `weft keys` subject names ("CN=weft process <i>", one name per line). */
export function processNamed(subject: string | undefined): number | undefined {
  for (const line of subject?.split('\n') ?? []) {
    const m = line.startsWith('CN=') ? COMMON_NAME.exec(line.slice(3)) : null;
    if (m) return Number(m[1]);
  }
  return undefined;
}

const COMMON_NAME = /^weft process (\d+)$/;
