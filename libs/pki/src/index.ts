import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The local development CA of the platform. Every service, and every
 * internal tool, proves who it is to the others with a certificate from this
 * CA (mutual TLS); the identity is the certificate's common name: a service
 * name ("identity", "edge", …) or "operator:<who>" for a person's tool.
 * Production uses the organisation's own CA (docs/security.md, "Service identity").
 *
 * Layout of a PKI directory: ca.crt, ca.key, and <name>.crt / <name>.key per
 * identity. Keys are written 0600. Files are ECDSA P-256, PEM.
 */

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export const SERVICE_IDENTITIES = ['identity', 'consent', 'token', 'accounting', 'edge'] as const;
export const OPERATOR_PREFIX = 'operator:';

export interface Credentials {
  /** PEM files of the CA certificate, this identity's certificate and its private key. */
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface IssueOptions {
  /** Host names and IPs the certificate may serve as (services); 127.0.0.1 and localhost are always added. */
  hosts?: string[];
  /** Days of validity (default 825, the CA/B limit; the CA itself gets 10 years). */
  days?: number;
}

/**
 * Makes sure `dir` holds a CA and a valid certificate for each of `names`
 * (idempotent: good files are kept). A certificate is issued again when it is
 * missing, not from the current CA, or within 30 days of expiring. Returns
 * the credential files per name.
 */
export async function ensurePki(dir: string, names: string[], options: IssueOptions = {}): Promise<Record<string, Credentials>> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, 'ca.crt');
  const caKeyFile = join(dir, 'ca.key');
  if (!existsSync(caFile) || !existsSync(caKeyFile)) await createCa(caFile, caKeyFile);
  const out: Record<string, Credentials> = {};
  for (const name of names) {
    const certFile = join(dir, `${fileName(name)}.crt`);
    const keyFile = join(dir, `${fileName(name)}.key`);
    if (!existsSync(keyFile) || !isCurrent(certFile, caFile)) await issue(caFile, caKeyFile, name, certFile, keyFile, options);
    out[name] = { caFile, certFile, keyFile };
  }
  return out;
}

/** Issued by the CA in caFile, and good for 30 more days. */
function isCurrent(certFile: string, caFile: string): boolean {
  if (!existsSync(certFile)) return false;
  const cert = new NodeX509(readFileSync(certFile));
  const ca = new NodeX509(readFileSync(caFile));
  return cert.checkIssued(ca) && cert.verify(ca.publicKey) && new Date(cert.validTo).getTime() > Date.now() + 30 * 86_400_000;
}

/** "operator:alice" → "operator-alice" (a safe file name). */
function fileName(name: string): string {
  if (!/^[a-z][a-z0-9-]*(:[a-z0-9._-]+)?$/i.test(name)) throw new TypeError(`Not an identity name: ${name}`);
  return name.replace(':', '-');
}

async function createCa(certFile: string, keyFile: string): Promise<void> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=Ledgerly development CA, O=Ledgerly',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 10 * 365 * 86_400_000),
    keys: keys as CryptoKeyPair,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as CryptoKey),
    ],
  });
  await writePair(certFile, cert.toString('pem'), keyFile, keys.privateKey as CryptoKey);
}

async function issue(caFile: string, caKeyFile: string, name: string, certFile: string, keyFile: string, options: IssueOptions): Promise<void> {
  const ca = new x509.X509Certificate(readFileSync(caFile, 'utf8'));
  const caKey = await importKey(readFileSync(caKeyFile, 'utf8'));
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const isService = !name.startsWith(OPERATOR_PREFIX);
  const hosts = [...new Set([...(isService ? [name] : []), 'localhost', ...(options.hosts ?? [])])];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${name}, O=Ledgerly`,
    issuer: ca.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + (options.days ?? 825) * 86_400_000),
    signingKey: caKey,
    publicKey: keys.publicKey as CryptoKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension([
        ...hosts.map((value) => ({ type: 'dns' as const, value })),
        { type: 'ip' as const, value: '127.0.0.1' },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(ca, false),
    ],
  });
  await writePair(certFile, cert.toString('pem'), keyFile, keys.privateKey as CryptoKey);
}

async function writePair(certFile: string, certPem: string, keyFile: string, key: CryptoKey): Promise<void> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').trim()}\n-----END PRIVATE KEY-----\n`;
  // Write then rename, so a concurrent reader never sees half a file.
  writeFileSync(`${keyFile}.tmp`, keyPem, { mode: 0o600 });
  renameSync(`${keyFile}.tmp`, keyFile);
  writeFileSync(`${certFile}.tmp`, certPem + '\n', { mode: 0o644 });
  renameSync(`${certFile}.tmp`, certFile);
}

async function importKey(pem: string): Promise<CryptoKey> {
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return (await webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign'])) as CryptoKey;
}

function serial(): string {
  // Positive, 16 random bytes (RFC 5280 §4.1.2.2).
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}
