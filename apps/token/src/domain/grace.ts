import type { TokenSet } from '@ledgerly/proto/token/v1/token';
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * The refresh-token grace window keeps, for a few seconds, the answer a
 * rotation gave, so a client that lost the response and retries with the same
 * (now used) refresh token gets the same tokens back rather than a new branch
 * of the family. The answer is stored encrypted (AES-256-GCM) under a key
 * derived (HKDF-SHA256) from the refresh token itself: only its holder can
 * read it, and the database never holds usable tokens in the clear.
 */
function keyFor(refreshToken: string, familyId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', refreshToken, familyId, 'ledgerly refresh grace v1', 32));
}

export function sealGraceResponse(refreshToken: string, familyId: string, tokens: TokenSet): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyFor(refreshToken, familyId), iv);
  const body = Buffer.concat([cipher.update(JSON.stringify(tokens), 'utf8'), cipher.final()]);
  return [iv, cipher.getAuthTag(), body].map((b) => b.toString('base64url')).join('.');
}

export function openGraceResponse(refreshToken: string, familyId: string, sealed: string): TokenSet | undefined {
  try {
    const [iv, tag, body] = sealed.split('.').map((p) => Buffer.from(p, 'base64url'));
    const decipher = createDecipheriv('aes-256-gcm', keyFor(refreshToken, familyId), iv!);
    decipher.setAuthTag(tag!);
    return JSON.parse(Buffer.concat([decipher.update(body!), decipher.final()]).toString('utf8')) as TokenSet;
  } catch {
    return undefined;
  }
}
