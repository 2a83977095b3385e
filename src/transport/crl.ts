// The cluster's certificate revocation list (`weft keys revoke`): a
// standard X.509 v2 CRL (RFC 5280, section 5) signed by the cluster's CA,
// so OpenSSL and Node's own `crl` option read it too. node:crypto cannot
// make or parse CRLs and node-forge has no CRL support, so this file
// writes the DER with forge's ASN.1 helpers and reads it back the same way:
//
//   CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }
//   TBSCertList     ::= SEQUENCE { version INTEGER (1: v2), signature AlgorithmIdentifier,
//                                  issuer Name (the CA's subject, byte for byte), thisUpdate Time,
//                                  nextUpdate Time, revokedCertificates SEQUENCE OF
//                                  SEQUENCE { serial INTEGER, revocationDate Time } (absent when empty),
//                                  [0] EXPLICIT Extensions { authorityKeyIdentifier, cRLNumber } }
//
// nextUpdate is the CA's own expiry: a CRL that went stale would make
// OpenSSL refuse every certificate of the cluster, and past the CA's
// expiry nothing of the cluster is valid anyway.

import type { X509Certificate } from 'node:crypto';
import type Forge from 'node-forge';
import { requireOptional } from '../optional.ts';

// node-forge is an optional peer dependency: loaded when a CRL is made or
// read (a cluster without crl.pem never loads it).
let loaded: typeof Forge | undefined;
const forgeLib = (): typeof Forge => (loaded ??= requireOptional<typeof Forge>('node-forge', 'a revocation list (weft keys revoke, crl.pem)'));
const asn1 = (): typeof Forge.asn1 => forgeLib().asn1;
// node:crypto on first use too: certificates.ts imports this file, and
// Config imports that, so every weft thread would load it (a few ms).
const crypto = () => process.getBuiltinModule('node:crypto');
const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
const AUTHORITY_KEY_ID = '2.5.29.35';
const CRL_NUMBER = '2.5.29.20';

/** A serial number as hex in one spelling (lower case, no leading zeros), to compare. */
export const serialKey = (hex: string): string => hex.toLowerCase().replace(/^0+(?=.)/, '');

export interface Revocation {
  /** The certificate's serial number, as serialKey spells it. */
  serial: string;
  date: Date;
}

export interface Crl {
  /** Revoked serials (lower-case hex) and when. */
  revoked: Revocation[];
  /** Grows by one per list the CA issues. */
  number: number;
}

const seq = (items: Forge.asn1.Asn1[]): Forge.asn1.Asn1 => asn1().create(asn1().Class.UNIVERSAL, asn1().Type.SEQUENCE, true, items);
const oid = (id: string): Forge.asn1.Asn1 => asn1().create(asn1().Class.UNIVERSAL, asn1().Type.OID, false, asn1().oidToDer(id).getBytes());
const octets = (bytes: string): Forge.asn1.Asn1 => asn1().create(asn1().Class.UNIVERSAL, asn1().Type.OCTETSTRING, false, bytes);
const der = (node: Forge.asn1.Asn1): Buffer => Buffer.from(asn1().toDer(node).getBytes(), 'binary');

/** A DER INTEGER from hex, positive and minimal. */
function integer(hex: string): Forge.asn1.Asn1 {
  let bytes = Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex');
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0 && bytes[start + 1]! < 0x80) start++;
  bytes = bytes.subarray(start);
  if (bytes[0]! >= 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return asn1().create(asn1().Class.UNIVERSAL, asn1().Type.INTEGER, false, bytes.toString('binary'));
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280, 5.1.2.4). */
function time(date: Date): Forge.asn1.Asn1 {
  return date.getUTCFullYear() < 2050
    ? asn1().create(asn1().Class.UNIVERSAL, asn1().Type.UTCTIME, false, asn1().dateToUtcTime(date))
    : asn1().create(asn1().Class.UNIVERSAL, asn1().Type.GENERALIZEDTIME, false, asn1().dateToGeneralizedTime(date));
}

function dateOf(node: Forge.asn1.Asn1): Date {
  const text = node.value as string;
  return node.type === asn1().Type.UTCTIME ? asn1().utcTimeToDate(text) : asn1().generalizedTimeToDate(text);
}

/** The subject Name of a certificate, as its DER has it. */
function subjectOf(ca: X509Certificate): Forge.asn1.Asn1 {
  const tbs = (asn1().fromDer(ca.raw.toString('binary')).value as Forge.asn1.Asn1[])[0]!.value as Forge.asn1.Asn1[];
  // tbsCertificate: [0] version, serial, signature, issuer, validity, subject, ...
  return tbs[tbs[0]!.tagClass === asn1().Class.CONTEXT_SPECIFIC ? 5 : 4]!;
}

/** A CRL of `revoked`, issued now by the CA (its certificate and private key, PEM). */
export function makeCrl(caCert: string | Buffer, caKey: string | Buffer, crl: Crl): string {
  const ca = new (crypto().X509Certificate)(caCert);
  const algorithm = seq([oid(SHA256_WITH_RSA), asn1().create(asn1().Class.UNIVERSAL, asn1().Type.NULL, false, '')]);
  const extensions: Forge.asn1.Asn1[] = [seq([oid(CRL_NUMBER), octets(asn1().toDer(integer(crl.number.toString(16))).getBytes())])];
  const keyId = forgeLib().pki.certificateFromPem(ca.toString()).getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  if (keyId?.subjectKeyIdentifier !== undefined) {
    const id = asn1().create(asn1().Class.CONTEXT_SPECIFIC, 0, false, forgeLib().util.hexToBytes(keyId.subjectKeyIdentifier));
    extensions.unshift(seq([oid(AUTHORITY_KEY_ID), octets(asn1().toDer(seq([id])).getBytes())]));
  }
  const tbs = seq([
    integer('01'),
    algorithm,
    subjectOf(ca),
    time(new Date()),
    time(new Date(ca.validTo)),
    ...(crl.revoked.length > 0 ? [seq(crl.revoked.map((r) => seq([integer(r.serial), time(r.date)])))] : []),
    asn1().create(asn1().Class.CONTEXT_SPECIFIC, 0, true, [seq(extensions)]),
  ]);
  const signature = crypto().sign('sha256', der(tbs), crypto().createPrivateKey(caKey));
  const list = seq([tbs, algorithm, asn1().create(asn1().Class.UNIVERSAL, asn1().Type.BITSTRING, false, `\0${signature.toString('binary')}`)]);
  return `-----BEGIN X509 CRL-----\n${der(list).toString('base64').replace(/.{1,64}/g, '$&\n')}-----END X509 CRL-----\n`;
}

/**
 * Reads a CRL and checks that the CA signed it: its revoked serials and
 * its number. Throws an Error saying what is wrong otherwise.
 */
export function readCrl(pem: string | Buffer, ca: X509Certificate): Crl {
  const m = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(String(pem));
  if (m === null) throw new Error('not a PEM CRL (-----BEGIN X509 CRL-----)');
  let tbs: Forge.asn1.Asn1;
  let signature: Buffer;
  try {
    const list = asn1().fromDer(Buffer.from(m[1]!, 'base64').toString('binary')).value as Forge.asn1.Asn1[];
    tbs = list[0]!;
    signature = Buffer.from((list[2]!.value as string).slice(1), 'binary');
  } catch (cause) {
    throw new Error(`not a readable CRL: ${(cause as Error).message}`, { cause });
  }
  if (!crypto().verify('sha256', der(tbs), ca.publicKey, signature)) throw new Error('not signed by the cluster CA');
  const fields = tbs.value as Forge.asn1.Asn1[];
  const revoked: Revocation[] = [];
  let number = 0;
  for (const f of fields.slice(5)) {
    if (f.tagClass === asn1().Class.CONTEXT_SPECIFIC) {
      for (const ext of ((f.value as Forge.asn1.Asn1[])[0]!.value as Forge.asn1.Asn1[])) {
        const [id, value] = ext.value as Forge.asn1.Asn1[];
        if (asn1().derToOid(id!.value as string) !== CRL_NUMBER) continue;
        number = Number.parseInt(forgeLib().util.bytesToHex(asn1().fromDer(value!.value as string).value as string), 16);
      }
    } else if (f.type === asn1().Type.SEQUENCE) {
      for (const entry of f.value as Forge.asn1.Asn1[]) {
        const [serial, date] = entry.value as Forge.asn1.Asn1[];
        revoked.push({ serial: serialKey(forgeLib().util.bytesToHex(serial!.value as string)), date: dateOf(date!) });
      }
    }
  }
  return { revoked, number };
}
