// `weft keys` certificate serials: OpenSSL refuses a DER INTEGER that is
// not minimal ("illegal padding"), which a random serial starting with a
// zero byte was, once in 256 certificates: CI met it as a flaky TLS test.
// And `weft keys revoke`: the CRL it writes is a standard one, which
// Node's own TLS (its crl option) honours as weft does.

import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { createServer, connect as connectTls, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import forge from 'node-forge';
import { makeKeys, serialNumber } from '../../src/cli/keys.ts';
import { readCrl, serialKey } from '../../src/transport/crl.ts';
import { detail, ROOT, run } from './helpers.ts';

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

describe('weft keys revoke', () => {
  const parent = mkdtempSync(join(tmpdir(), 'weft-keys-revoke-'));
  afterAll(() => rmSync(parent, { recursive: true, force: true }));
  const weft = async (args: string[]) => {
    const p = run(join(ROOT, 'bin/weft.mjs'), ['keys', ...args]);
    return { ...(await p.exited), p };
  };

  it('writes a CRL signed by the CA that Node\'s own TLS (crl option) honours; revoking more extends it; the same twice, or without ca.key, is an error', async () => {
    const dir = join(parent, 'keys');
    makeKeys({ dir, processes: 3, days: 30 });
    const read = (name: string) => readFileSync(join(dir, name));
    const first = await weft(['revoke', dir, '1']);
    expect(first.code, detail(first.p)).toBe(0);
    expect(first.p.stdout).toEqual([join(dir, 'crl.pem')]);

    // A plain Node TLS server given the list: process 1 is revoked, process 2 is not.
    const verdicts = new Map<number, string | null>();
    const server = createServer({ key: read('process-0.key'), cert: read('process-0.crt'), ca: read('ca.crt'), crl: read('crl.pem'), requestCert: true, rejectUnauthorized: false });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    for (const i of [1, 2]) {
      const accepted = new Promise<TLSSocket>((r) => server.once('secureConnection', r));
      const client = connectTls({ host: '127.0.0.1', port, key: read(`process-${i}.key`), cert: read(`process-${i}.crt`), ca: read('ca.crt'), checkServerIdentity: () => undefined });
      client.on('error', () => {});
      const socket = await accepted;
      verdicts.set(i, socket.authorized ? null : String(socket.authorizationError));
      socket.destroy();
      client.destroy();
    }
    server.close();
    expect(Object.fromEntries(verdicts)).toEqual({ 1: 'CERT_REVOKED', 2: null });

    const second = await weft(['revoke', dir, '2']);
    expect(second.code, detail(second.p)).toBe(0);
    const ca = new X509Certificate(read('ca.crt'));
    const serial = (i: number) => serialKey(new X509Certificate(read(`process-${i}.crt`)).serialNumber);
    const crl = readCrl(read('crl.pem'), ca);
    expect(crl.revoked.map((r) => r.serial)).toEqual([serial(1), serial(2)]);
    expect(crl.number).toBe(2);

    const again = await weft(['revoke', dir, '1']);
    expect(again.code).toBe(1);
    expect(again.p.stderr.join('\n')).toBe(`weft keys revoke: ${join(dir, 'process-1.crt')} is already revoked in ${join(dir, 'crl.pem')}`);
    unlinkSync(join(dir, 'ca.key'));
    const keyless = await weft(['revoke', dir, '0']);
    expect(keyless.code).toBe(1);
    expect(keyless.p.stderr.join('\n')).toMatch(new RegExp(`^weft keys revoke: cannot read ${join(dir, 'ca.key')} \\(made by \`weft keys`));
    expect(readCrl(read('crl.pem'), ca).revoked).toHaveLength(2);
  }, 120_000); // four weft commands and a TLS server, on a loaded machine
});
