import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { createHash } from 'node:crypto';
import { parseScope } from './scopes.js';

/** The only algorithm an access token may be signed with (never "none", no HS/RS confusion). */
export const ACCESS_TOKEN_ALGORITHMS = ['ES256'];
/** RFC 9068 §2.1: the JWT "typ" header of an access token. */
export const ACCESS_TOKEN_TYP = 'at+jwt';
/** Access tokens live 30 minutes. */
export const ACCESS_TOKEN_TTL_SECONDS = 30 * 60;

/** The verified claims of an RFC 9068 access token. */
export interface AccessTokenClaims {
  readonly issuer: string;
  /** The user (OpenID Connect sub). */
  readonly userId: string;
  readonly clientId: string;
  readonly scopes: ReadonlySet<string>;
  readonly tokenId: string;
  /** Seconds since the epoch. */
  readonly issuedAt: number;
  /** Milliseconds since the epoch: what revocations are compared with. */
  readonly issuedAtMs: number;
  readonly expiresAt: number;
  readonly authTime: number;
  readonly authEventId: string;
  readonly grantId: string;
  /** RFC 9449 §6.1: the thumbprint of the DPoP key the token is bound to (cnf.jkt). */
  readonly dpopJkt?: string;
}

/** The token is not (or no longer) acceptable: RFC 6750 §3.1 invalid_token. */
export class InvalidTokenError extends Error {
  override readonly name = 'InvalidTokenError';
}

export interface AccessTokenVerifierOptions {
  issuer: string;
  audience: string;
  /** Fetches the current JWK Set (from the token service). */
  fetchJwks: () => Promise<JSONWebKeySet>;
  /** Clock skew allowed on exp/iat, in seconds (default 5). */
  clockToleranceSeconds?: number;
  /** How long the JWK Set is reused before being fetched again (default 5 min). */
  jwksMaxAgeMs?: number;
  /** Verified tokens remembered, so a repeated token skips the signature check (default 10,000). */
  cacheSize?: number;
}

/**
 * Verifies access tokens locally against the token service's JWKS: signature
 * (ES256 only), typ at+jwt, issuer, audience, expiry, and the claims every
 * token must carry. An unknown "kid" triggers one JWKS refresh (at most once
 * a second), so a key rotation is picked up without a restart.
 */
export class AccessTokenVerifier {
  private keySet: JWTVerifyGetKey | undefined;
  private fetchedAt = 0;
  private refreshing: Promise<void> | undefined;
  private lastForcedRefresh = 0;
  private readonly verified = new Map<string, AccessTokenClaims>();

  constructor(private readonly options: AccessTokenVerifierOptions) {}

  async verify(token: string): Promise<AccessTokenClaims> {
    if (typeof token !== 'string' || token.length === 0 || token.length > 8192) {
      throw new InvalidTokenError('The access token is missing or malformed');
    }
    const cacheKey = createHash('sha256').update(token).digest('base64url');
    const cached = this.verified.get(cacheKey);
    const now = Date.now() / 1000;
    if (cached) {
      if (cached.expiresAt + (this.options.clockToleranceSeconds ?? 5) > now) return cached;
      this.verified.delete(cacheKey);
    }
    const claims = await this.verifySignature(token);
    this.remember(cacheKey, claims);
    return claims;
  }

  private async verifySignature(token: string): Promise<AccessTokenClaims> {
    const getKey: JWTVerifyGetKey = async (header, input) => {
      const keys = await this.keys();
      try {
        return await keys(header, input);
      } catch (err) {
        if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
        // RFC 7517 §4.5: an unknown kid may be a new key; look once more.
        const now = Date.now();
        if (now - this.lastForcedRefresh < 1000) throw err;
        this.lastForcedRefresh = now;
        await this.refresh();
        return (await this.keys())(header, input);
      }
    };
    try {
      const { payload } = await jwtVerify(token, getKey, {
        issuer: this.options.issuer,
        audience: this.options.audience,
        algorithms: ACCESS_TOKEN_ALGORITHMS,
        typ: ACCESS_TOKEN_TYP,
        clockTolerance: this.options.clockToleranceSeconds ?? 5,
        requiredClaims: ['sub', 'client_id', 'jti', 'iat', 'exp', 'scope'],
      });
      const str = (v: unknown) => (typeof v === 'string' ? v : '');
      const num = (v: unknown) => (typeof v === 'number' ? v : 0);
      if (!str(payload.sub) || !str(payload['client_id']) || !str(payload.jti)) {
        throw new InvalidTokenError('The access token lacks required claims');
      }
      return {
        issuer: str(payload.iss),
        userId: str(payload.sub),
        clientId: str(payload['client_id']),
        scopes: new Set(parseScope(str(payload['scope']))),
        tokenId: str(payload.jti),
        issuedAt: num(payload.iat),
        // Our tokens carry the millisecond; otherwise iat's second, counted from its start.
        issuedAtMs: typeof payload['issued_at_ms'] === 'number' && Math.floor(payload['issued_at_ms'] / 1000) === num(payload.iat) ? payload['issued_at_ms'] : num(payload.iat) * 1000,
        expiresAt: num(payload.exp),
        authTime: num(payload['auth_time']),
        authEventId: str(payload['authentication_event_id']),
        grantId: str(payload['grant_id']),
        ...dpopBinding(payload['cnf']),
      };
    } catch (err) {
      if (err instanceof InvalidTokenError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new InvalidTokenError('The access token expired');
      if (err instanceof joseErrors.JOSEError) throw new InvalidTokenError('The access token is invalid');
      throw err;
    }
  }

  private remember(key: string, claims: AccessTokenClaims): void {
    const max = this.options.cacheSize ?? 10_000;
    if (max <= 0) return;
    if (this.verified.size >= max) {
      const oldest = this.verified.keys().next().value;
      if (oldest !== undefined) this.verified.delete(oldest);
    }
    this.verified.set(key, claims);
  }

  private async keys(): Promise<JWTVerifyGetKey> {
    const maxAge = this.options.jwksMaxAgeMs ?? 5 * 60_000;
    if (!this.keySet || Date.now() - this.fetchedAt > maxAge) {
      try {
        await this.refresh();
      } catch (err) {
        // Keys we already have stay good while the token service is away
        // (try again in 5 s); without any, fail.
        if (!this.keySet) throw err;
        this.fetchedAt = Date.now() - maxAge + 5_000;
      }
    }
    return this.keySet!;
  }

  /** Makes the next verification fetch the JWK Set first (a key was rotated). */
  refreshSoon(): void {
    this.fetchedAt = 0;
  }

  private refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const jwks = await this.options.fetchJwks();
        this.keySet = createLocalJWKSet(jwks);
        this.fetchedAt = Date.now();
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }
}

function dpopBinding(cnf: unknown): { dpopJkt?: string } {
  if (cnf === undefined) return {};
  const jkt = typeof cnf === 'object' && cnf !== null ? (cnf as Record<string, unknown>)['jkt'] : undefined;
  // A cnf we do not understand must not be ignored: the token would lose its binding.
  if (typeof jkt !== 'string' || jkt.length === 0) throw new InvalidTokenError('The access token has an unsupported confirmation (cnf)');
  return { dpopJkt: jkt };
}

/** The "aud" of access tokens: the platform's resource servers (like Xero's ".../resources"). */
export function apiAudience(issuer: string): string {
  return `${issuer}/resources`;
}
