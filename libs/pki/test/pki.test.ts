import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensurePki } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ledgerly-pki-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('development PKI', () => {
  it('issues CA-signed certificates whose common name is the identity, keys readable by the owner only', async () => {
    const creds = await ensurePki(dir, ['identity', 'operator:alice'], { hosts: ['identity.internal'] });
    const ca = new X509Certificate(readFileSync(creds['identity']!.caFile));
    const service = new X509Certificate(readFileSync(creds['identity']!.certFile));
    const operator = new X509Certificate(readFileSync(creds['operator:alice']!.certFile));
    expect(ca.ca).toBe(true);
    expect(service.checkIssued(ca) && service.verify(ca.publicKey)).toBe(true);
    expect(service.subject).toContain('CN=identity');
    expect(service.subjectAltName).toContain('DNS:identity.internal');
    expect(service.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(operator.subject).toContain('CN=operator:alice');
    expect(statSync(creds['identity']!.keyFile).mode & 0o777).toBe(0o600);
  });

  it('is idempotent: a second call keeps the existing CA and certificates', async () => {
    const first = await ensurePki(dir, ['edge']);
    const before = readFileSync(first['edge']!.certFile, 'utf8');
    const ca = readFileSync(first['edge']!.caFile, 'utf8');
    const second = await ensurePki(dir, ['edge', 'token']);
    expect(readFileSync(second['edge']!.certFile, 'utf8')).toBe(before);
    expect(readFileSync(second['token']!.caFile, 'utf8')).toBe(ca);
  });

  it('issues again a certificate that is not from the current CA (the CA was replaced)', async () => {
    const other = mkdtempSync(join(tmpdir(), 'ledgerly-pki-replaced-'));
    const first = await ensurePki(other, ['consent']);
    const oldCert = readFileSync(first['consent']!.certFile, 'utf8');
    rmSync(join(other, 'ca.key'));
    const second = await ensurePki(other, ['consent']);
    const cert = new X509Certificate(readFileSync(second['consent']!.certFile));
    expect(readFileSync(second['consent']!.certFile, 'utf8')).not.toBe(oldCert);
    expect(cert.checkIssued(new X509Certificate(readFileSync(second['consent']!.caFile)))).toBe(true);
  });

  it('makes certificates that work for mutual TLS, and a foreign CA is refused', async () => {
    const creds = await ensurePki(dir, ['token', 'edge']);
    const foreign = await ensurePki(mkdtempSync(join(tmpdir(), 'ledgerly-pki-other-')), ['edge']);
    const server = createServer(
      { cert: readFileSync(creds['token']!.certFile), key: readFileSync(creds['token']!.keyFile), ca: readFileSync(creds['token']!.caFile), requestCert: true, rejectUnauthorized: true },
      (socket) => socket.end(String((socket.getPeerCertificate() as { subject: { CN: string } }).subject.CN)),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const talk = (c: { certFile: string; keyFile: string; caFile: string }, ca: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, cert: readFileSync(c.certFile), key: readFileSync(c.keyFile), ca: readFileSync(ca) }, () => undefined);
        let data = '';
        socket.on('data', (d) => (data += d));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
    expect(await talk(creds['edge']!, creds['edge']!.caFile)).toBe('edge');
    // TLS 1.3: the server refuses the foreign client certificate after the handshake; the client gets nothing.
    expect(await talk(foreign['edge']!, creds['edge']!.caFile).catch(() => '')).toBe('');
    server.close();
  });
});
