// Certificates an attacker (or a careless operator) would bring to a TLS
// cluster, made with node-forge in the test: self-signed, of another CA,
// expired, not yet valid, a CA certificate as a leaf. Each is a key and a
// certificate, PEM.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface Identity {
  key: string;
  cert: string;
}

const DAY_MS = 86_400_000;

function keyPair(): { pem: string; key: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { pem, key: forge.pki.privateKeyFromPem(pem), publicKey: forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string) };
}

export interface Forge {
  /** Subject common name. */
  name: string;
  /** The issuer's certificate and key (PEM); none: self-signed. */
  issuer?: Identity;
  /** Validity, in days from now. Default: from yesterday to in a year. */
  from?: number;
  to?: number;
  /** A CA certificate (basicConstraints cA). */
  ca?: boolean;
}

/** A key and a certificate as described. */
export function forgeIdentity(o: Forge): Identity {
  const pair = keyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = pair.publicKey;
  cert.serialNumber = `4${randomBytes(15).toString('hex').slice(1)}`;
  cert.validity.notBefore = new Date(Date.now() + (o.from ?? -1) * DAY_MS);
  cert.validity.notAfter = new Date(Date.now() + (o.to ?? 365) * DAY_MS);
  cert.setSubject([{ name: 'commonName', value: o.name }]);
  const issuer = o.issuer !== undefined ? forge.pki.certificateFromPem(o.issuer.cert) : undefined;
  cert.setIssuer(issuer !== undefined ? issuer.subject.attributes : cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: o.ca === true, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: o.ca === true, cRLSign: o.ca === true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectKeyIdentifier' },
    ...(issuer !== undefined ? [{ name: 'authorityKeyIdentifier', keyIdentifier: issuer.generateSubjectKeyIdentifier().getBytes() }] : []),
  ]);
  cert.sign(o.issuer !== undefined ? forge.pki.privateKeyFromPem(o.issuer.key) : pair.key, forge.md.sha256.create());
  return { key: pair.pem, cert: forge.pki.certificateToPem(cert) };
}
