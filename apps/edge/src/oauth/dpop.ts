import type { OnceKeys } from '@ledgerly/chassis';
import { calculateJwkThumbprint, decodeProtectedHeader, importJWK, jwtVerify, type JWK } from 'jose';
import type { Context } from 'koa';
import { createHash } from 'node:crypto';

/** Signature algorithms a DPoP proof may use (RFC 9449 §4.2: asymmetric only, never "none"). */
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'EdDSA', 'PS256', 'RS256'];
/** How old (or, with clock skew, how far ahead) a proof's iat may be. Also how long its jti is remembered. */
const MAX_AGE_SECONDS = 60;
const MAX_AHEAD_SECONDS = 10;
export const DPOP_WINDOW_MS = (MAX_AGE_SECONDS + MAX_AHEAD_SECONDS) * 1000;

/** A DPoP proof is missing, malformed, or does not match the request (RFC 9449 §5, §7.1: invalid_dpop_proof). */
export class InvalidDpopProof extends Error {
  override readonly name = 'InvalidDpopProof';
}

/** The DPoP header of the request: undefined when absent, an error when sent more than once. */
export function dpopHeader(ctx: Context): string | undefined {
  const raw = ctx.req.headersDistinct['dpop'];
  if (!raw || raw.length === 0) return undefined;
  // RFC 9449 §4.3 check 1: exactly one DPoP header.
  if (raw.length > 1) throw new InvalidDpopProof('Send exactly one DPoP header');
  return raw[0];
}

export interface ProofCheck {
  /** The request's method and URL (what htm and htu must say). */
  method: string;
  url: string;
  /** At a resource: the access token, whose hash ath must be. */
  accessToken?: string;
  replay: OnceKeys;
}

/**
 * Verifies a DPoP proof (RFC 9449 §4.3) and returns the JWK SHA-256
 * thumbprint (RFC 7638) of its key:
 *   - a JWT with typ dpop+jwt, an allowed asymmetric alg, and a public jwk
 *     in its header that verifies the signature;
 *   - htm and htu match the request (htu without query and fragment);
 *   - iat is recent, and jti was not seen before within that window (shared
 *     by every edge instance);
 *   - at a resource, ath is the hash of the access token.
 */
export async function verifyDpopProof(proof: string, check: ProofCheck): Promise<string> {
  if (proof.length > 8192) throw new InvalidDpopProof('The DPoP proof is too large');
  let header;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    throw new InvalidDpopProof('The DPoP proof is not a JWT');
  }
  if (header.typ !== 'dpop+jwt') throw new InvalidDpopProof('The DPoP proof must have typ dpop+jwt');
  if (typeof header.alg !== 'string' || !DPOP_ALGORITHMS.includes(header.alg)) {
    throw new InvalidDpopProof(`The DPoP proof must be signed with one of ${DPOP_ALGORITHMS.join(', ')}`);
  }
  const jwk = header.jwk as JWK | undefined;
  if (!jwk || typeof jwk !== 'object') throw new InvalidDpopProof('The DPoP proof must carry its public key (jwk)');
  if (jwk.kty === 'oct' || 'd' in jwk || 'p' in jwk || 'q' in jwk || 'k' in jwk) throw new InvalidDpopProof('The DPoP proof key must be a public key');
  let payload;
  try {
    const key = await importJWK(jwk, header.alg);
    ({ payload } = await jwtVerify(proof, key, { typ: 'dpop+jwt', algorithms: [header.alg] }));
  } catch {
    throw new InvalidDpopProof('The DPoP proof signature is not valid');
  }
  const { htm, htu, iat, jti, ath } = payload as Record<string, unknown>;
  if (typeof jti !== 'string' || jti.length < 8 || jti.length > 256) throw new InvalidDpopProof('The DPoP proof needs a unique jti');
  if (htm !== check.method) throw new InvalidDpopProof(`The DPoP proof htm must be ${check.method}`);
  if (typeof htu !== 'string' || !sameUri(htu, check.url)) throw new InvalidDpopProof(`The DPoP proof htu must be ${withoutQuery(check.url)}`);
  const now = Math.floor(Date.now() / 1000);
  if (typeof iat !== 'number' || iat < now - MAX_AGE_SECONDS || iat > now + MAX_AHEAD_SECONDS) {
    throw new InvalidDpopProof('The DPoP proof iat is too old or in the future');
  }
  if (check.accessToken !== undefined) {
    const expected = createHash('sha256').update(check.accessToken).digest('base64url');
    if (ath !== expected) throw new InvalidDpopProof('The DPoP proof ath does not match the access token');
  }
  const jkt = await calculateJwkThumbprint(jwk, 'sha256');
  // RFC 9449 §11.1: a proof is used once. Keyed by key and jti.
  const key = createHash('sha256').update(`${jkt}.${jti}`).digest('base64url');
  if (!(await check.replay.firstUse(key))) throw new InvalidDpopProof('The DPoP proof was already used (jti replay)');
  return jkt;
}

function withoutQuery(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/** RFC 9449 §4.3 check 9: compared without query and fragment, after syntax-based normalisation (RFC 3986 §6.2.2). */
function sameUri(htu: string, url: string): boolean {
  try {
    return withoutQuery(htu) === withoutQuery(url);
  } catch {
    return false;
  }
}
