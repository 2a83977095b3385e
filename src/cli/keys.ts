// `weft keys <dir> -n <processes>`: the files mutual TLS needs (see
// src/transport/tls.ts): a CA for this cluster, and per process a key and a
// certificate the CA signed, naming the process ("weft process <i>") and
// good for both ends of a connection. Keys are RSA 2048 made by node:crypto;
// node:crypto cannot make X.509 certificates, so node-forge (pure
// JavaScript) builds and signs them. `weft keys revoke <dir> <i>` adds
// process i's certificate to the CA's revocation list (crl.ts).

import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { CRL_FILE, tlsFileNames } from '../transport/certificates.ts';
import { makeCrl, readCrl, serialKey, type Crl } from '../transport/crl.ts';
import { ConfigError } from '../errors.ts';

export interface KeysOptions {
  dir: string;
  processes: number;
  /** How long the certificates are valid, in days. */
  days: number;
}

const DAY_MS = 86_400_000;

function keyPair(): { key: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return {
    pem,
    key: forge.pki.privateKeyFromPem(pem),
    publicKey: forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string),
  };
}

/**
 * A certificate serial from 16 random bytes, as the hex forge writes
 * verbatim into a DER INTEGER. DER wants it positive (top bit clear) and
 * minimal (no leading zero byte before a byte whose top bit is clear):
 * OpenSSL refuses a certificate whose serial starts 00 0x ("illegal
 * padding"), which one in 256 random serials did before bit 6 was set.
 */
export function serialNumber(random: Uint8Array): string {
  const bytes = Buffer.from(random);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function certificate(
  subject: string,
  publicKey: forge.pki.rsa.PublicKey,
  days: number,
  issuer: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey } | { key: forge.pki.rsa.PrivateKey },
): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serialNumber(randomBytes(16));
  cert.validity.notBefore = new Date(Date.now() - 5 * 60_000); // some slack for clocks that differ
  cert.validity.notAfter = new Date(Date.now() + days * DAY_MS);
  cert.setSubject([{ name: 'commonName', value: subject }]);
  const ca = !('cert' in issuer);
  cert.setIssuer(ca ? cert.subject.attributes : issuer.cert.subject.attributes);
  cert.setExtensions(ca
    ? [
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
        { name: 'subjectKeyIdentifier' },
      ]
    : [
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
        { name: 'subjectKeyIdentifier' },
        { name: 'authorityKeyIdentifier', keyIdentifier: issuer.cert.generateSubjectKeyIdentifier().getBytes() },
      ]);
  cert.sign(issuer.key, forge.md.sha256.create());
  return cert;
}

/** Writes the CA and every process's key and certificate into `dir`; returns the paths written. */
export function makeKeys(o: KeysOptions): string[] {
  const names = ['ca.key', ...Array.from({ length: o.processes }, (_, i) => Object.values(tlsFileNames(i))).flat()];
  const taken = [...new Set(names)].filter((name) => existsSync(join(o.dir, name)));
  if (taken.length > 0) throw new ConfigError(`weft keys: ${taken.map((n) => join(o.dir, n)).join(', ')} already exist${taken.length === 1 ? 's' : ''}; remove them or choose another folder`);
  // Before the keys are made (seconds of RSA): a folder that cannot be is one line, and soon.
  try {
    mkdirSync(o.dir, { recursive: true });
  } catch (cause) {
    throw new ConfigError(`weft keys: cannot make the folder ${o.dir}: ${(cause as Error).message}`, { cause });
  }
  const files = new Map<string, string>();
  const ca = keyPair();
  const caCert = certificate(`weft cluster CA ${randomBytes(6).toString('hex')}`, ca.publicKey, o.days, { key: ca.key });
  files.set(tlsFileNames(0).ca, forge.pki.certificateToPem(caCert));
  files.set('ca.key', ca.pem);
  for (let i = 0; i < o.processes; i++) {
    const names = tlsFileNames(i);
    const pair = keyPair();
    files.set(names.cert, forge.pki.certificateToPem(certificate(`weft process ${i}`, pair.publicKey, o.days, { cert: caCert, key: ca.key })));
    files.set(names.key, pair.pem);
  }
  const written: string[] = [];
  for (const [name, text] of files) {
    const path = join(o.dir, name);
    // Keys readable by their owner only.
    writeFileSync(path, text, { mode: name.endsWith('.key') ? 0o600 : 0o644, flag: 'wx' });
    written.push(path);
  }
  return written;
}

/**
 * `weft keys revoke <dir> <i>`: adds process i's certificate to the CA's
 * revocation list (crl.pem in `dir`, made or extended), which every process
 * that reads the folder loads: from then on that certificate is refused at
 * both ends, and the rest of the cluster keeps its keys. Returns the path.
 */
export function revoke(dir: string, process: number): string {
  const read = (name: string): Buffer => {
    try {
      return readFileSync(join(dir, name));
    } catch (cause) {
      throw new ConfigError(`weft keys revoke: cannot read ${join(dir, name)} (made by \`weft keys ${dir}\`): ${(cause as Error).message}`, { cause });
    }
  };
  const names = tlsFileNames(process);
  const [caCert, caKey, cert] = [read(names.ca), read('ca.key'), new X509Certificate(read(names.cert))];
  const path = join(dir, CRL_FILE);
  let crl: Crl = { revoked: [], number: 0 };
  if (existsSync(path)) {
    try {
      crl = readCrl(read(CRL_FILE), new X509Certificate(caCert));
    } catch (cause) {
      throw new ConfigError(`weft keys revoke: ${path}: ${(cause as Error).message}`, { cause });
    }
  }
  const serial = serialKey(cert.serialNumber);
  if (crl.revoked.some((r) => r.serial === serial)) throw new ConfigError(`weft keys revoke: ${join(dir, names.cert)} is already revoked in ${path}`);
  const next = makeCrl(caCert, caKey, { revoked: [...crl.revoked, { serial, date: new Date() }], number: crl.number + 1 });
  // Whole or not at all: a process that starts meanwhile reads the old list or the new one.
  const partial = `${path}.${randomBytes(4).toString('hex')}`;
  writeFileSync(partial, next, { mode: 0o644, flag: 'wx' });
  renameSync(partial, path);
  return path;
}
