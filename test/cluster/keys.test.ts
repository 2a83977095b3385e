// `weft keys` certificate serials: OpenSSL refuses a DER INTEGER that is
// not minimal ("illegal padding"), which a random serial starting with a
// zero byte was, once in 256 certificates: CI met it as a flaky TLS test.

import { describe, expect, it } from 'vitest';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import forge from 'node-forge';
import { serialNumber } from '../../src/cli/keys.ts';

const sixteen = fc.uint8Array({ minLength: 16, maxLength: 16 });

describe('weft keys serial numbers', () => {
  it('are 16 bytes, positive and minimal in DER, and keep the rest of the random bytes', () => {
    fc.assert(
      fc.property(sixteen, (random) => {
        const hex = serialNumber(random);
        expect(hex).toMatch(/^[0-9a-f]{32}$/);
        const first = Number.parseInt(hex.slice(0, 2), 16);
        expect(first).toBeGreaterThanOrEqual(0x40);
        expect(first).toBeLessThan(0x80);
        expect(hex.slice(2)).toBe(Buffer.from(random).subarray(1).toString('hex'));
      }),
    );
  });

  it('make certificates OpenSSL reads, for random bytes that start with a zero byte', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const key = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    for (const second of [0x00, 0x01, 0x7f, 0x80, 0xff]) {
      const random = new Uint8Array(16).fill(0x5a);
      random[0] = 0;
      random[1] = second;
      const cert = forge.pki.createCertificate();
      cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string);
      cert.serialNumber = serialNumber(random);
      cert.validity.notBefore = new Date();
      cert.validity.notAfter = new Date(Date.now() + 86_400_000);
      cert.setSubject([{ name: 'commonName', value: 'weft process 0' }]);
      cert.setIssuer(cert.subject.attributes);
      cert.sign(key, forge.md.sha256.create());
      expect(new X509Certificate(forge.pki.certificateToPem(cert)).serialNumber.toLowerCase()).toBe(cert.serialNumber);
    }
  });
});
