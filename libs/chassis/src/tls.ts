import { credentials, ServerCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * The mutual TLS material of one identity (a service, or an operator's tool):
 * the CA every peer's certificate must chain to, and this identity's
 * certificate and key. The identity is the certificate's common name.
 */
export interface TlsMaterial {
  readonly identity: string;
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** Reads the files; throws a clear error when one is missing or not a certificate. */
export function loadTls(files: TlsFiles): TlsMaterial {
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`Cannot read the ${what} (${file}): ${(err as Error).message}`);
    }
  };
  const ca = read(files.caFile, 'CA certificate');
  const cert = read(files.certFile, 'certificate');
  const key = read(files.keyFile, 'private key');
  return { identity: commonName(cert), ca, cert, key };
}

/** The CN of a PEM certificate. */
export function commonName(pem: Buffer | string): string {
  const subject = new X509Certificate(pem).subject;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(subject)?.[1];
  if (!cn) throw new Error('The certificate has no common name');
  return cn;
}

/** Server side: TLS, and a client certificate from the same CA is required. */
export function serverCredentials(tls: TlsMaterial): ServerCredentials {
  return ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}

/** Client side: present our certificate, accept only servers from the same CA. */
export function channelCredentials(tls: TlsMaterial): ChannelCredentials {
  return credentials.createSsl(tls.ca, tls.key, tls.cert);
}

/** Callers, as they appear in a service's access list. */
export const OPERATOR = 'operator';
/** Only for tests of the chassis itself: any caller, even without a certificate. */
export const ANY_CALLER = '*';

/** Does the caller (a certificate CN) match an access-list entry? */
export function callerMatches(caller: string, entry: string): boolean {
  if (entry === ANY_CALLER) return true;
  if (entry === OPERATOR) return caller === OPERATOR || caller.startsWith(`${OPERATOR}:`);
  return caller === entry;
}
