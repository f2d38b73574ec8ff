import { ACCESS_TOKEN_TYP, userClaims } from '@ledgerly/access';
import { randomSecret, sha256, type PromiseClient } from '@ledgerly/chassis';
import type { IdentityServiceDefinition, User } from '@ledgerly/proto/identity/v1/identity';
import type { TokenSet } from '@ledgerly/proto/token/v1/token';
import { SignJWT } from 'jose';
import { createHash, randomUUID } from 'node:crypto';
import type { TokenConfig } from '../config.js';
import type { RefreshTokenStore } from '../store/refresh-tokens.js';
import type { SigningKeys } from './signing-keys.js';

/** What a token set is issued for: one user's authorization of one app. */
export interface Authorization {
  clientId: string;
  userId: string;
  /** The scopes of the authorization; a rotated refresh token keeps exactly these (RFC 6749 §6). */
  scopes: string[];
  /** A narrower set for this access token, if the client asked for one at refresh. */
  accessScopes?: string[];
  grantId: string;
  authEventId: string;
  authTime: Date;
  amr: string[];
  sessionId: string;
  /** OpenID Connect nonce of the authorization request (code exchange only). */
  nonce?: string;
  /** The refresh-token family being rotated, if any. */
  familyId?: string;
  /** RFC 9449: bind the access token (cnf.jkt) to this DPoP key thumbprint. */
  dpopJkt?: string;
  /** Bind the new refresh token to the DPoP key too (public clients, RFC 9449 §5). */
  bindRefreshToken?: boolean;
  /** client_credentials: no refresh token, whatever the scopes. */
  noRefreshToken?: boolean;
  /** client_credentials: no ID token either: nobody signed in (OpenID Connect Core §2). */
  noIdToken?: boolean;
  /** The user as just read from identity (checking they are still allowed), for the ID token's claims. */
  user?: User;
}

/** A token set and what the family ledger needs to know about it. */
export interface Issued {
  tokens: TokenSet;
  familyId: string;
  accessTokenId: string;
  accessTokenExpiresAt: Date;
}

/**
 * Mints token sets: an RFC 9068 access token (ES256 JWT, typ at+jwt), a
 * refresh token when offline_access was granted, and an OpenID Connect ID
 * token when openid was.
 */
export class TokenIssuer {
  constructor(
    private readonly config: TokenConfig,
    private readonly keys: SigningKeys,
    private readonly refreshTokens: RefreshTokenStore,
    private readonly identity: PromiseClient<typeof IdentityServiceDefinition>,
  ) {}

  async issue(auth: Authorization): Promise<Issued> {
    const { kid, key } = this.keys.current();
    const nowMs = Date.now();
    const now = Math.floor(nowMs / 1000);
    const ttl = this.config.LEDGERLY_ACCESS_TOKEN_TTL_SECONDS;
    const accessScopes = auth.accessScopes ?? auth.scopes;
    const accessTokenId = randomUUID();
    const familyId = auth.familyId ?? randomUUID();
    const scope = accessScopes.join(' ');
    const accessToken = await new SignJWT({
      client_id: auth.clientId,
      scope,
      auth_time: Math.floor(auth.authTime.getTime() / 1000),
      authentication_event_id: auth.authEventId,
      grant_id: auth.grantId,
      sid: auth.sessionId,
      // iat has second precision; revocations are compared to the millisecond.
      issued_at_ms: nowMs,
      ...(auth.dpopJkt ? { cnf: { jkt: auth.dpopJkt } } : {}),
    })
      .setProtectedHeader({ alg: 'ES256', typ: ACCESS_TOKEN_TYP, kid })
      .setIssuer(this.config.LEDGERLY_ISSUER)
      .setSubject(auth.userId)
      .setAudience(this.config.audience)
      .setJti(accessTokenId)
      .setIssuedAt(now)
      .setExpirationTime(now + ttl)
      .sign(key);

    let refreshToken = '';
    if (auth.scopes.includes('offline_access') && !auth.noRefreshToken) {
      refreshToken = randomSecret(32);
      await this.refreshTokens.insert({
        _id: sha256(refreshToken),
        familyId,
        clientId: auth.clientId,
        userId: auth.userId,
        scopes: auth.scopes,
        grantId: auth.grantId,
        authEventId: auth.authEventId,
        authTime: auth.authTime,
        amr: auth.amr,
        sessionId: auth.sessionId,
        createdAt: new Date(),
        expiresAt: new Date(Date.now() + this.config.LEDGERLY_REFRESH_TOKEN_TTL_SECONDS * 1000),
        usedAt: null,
        ...(auth.dpopJkt && auth.bindRefreshToken ? { dpopJkt: auth.dpopJkt } : {}),
      });
    }

    const idToken = accessScopes.includes('openid') && !auth.noIdToken ? await this.idToken(auth, accessScopes, accessToken, now, kid, key) : '';
    return {
      tokens: { accessToken, tokenType: auth.dpopJkt ? 'DPoP' : 'Bearer', expiresIn: ttl, refreshToken, idToken, scope },
      familyId,
      accessTokenId,
      accessTokenExpiresAt: new Date((now + ttl) * 1000),
    };
  }

  /** OpenID Connect Core §2 and §3.1.3.6 (at_hash). */
  private async idToken(
    auth: Authorization,
    scopes: string[],
    accessToken: string,
    now: number,
    kid: string,
    key: Parameters<SignJWT['sign']>[0],
  ): Promise<string> {
    const claims: Record<string, unknown> = {
      auth_time: Math.floor(auth.authTime.getTime() / 1000),
      at_hash: createHash('sha256').update(accessToken).digest().subarray(0, 16).toString('base64url'),
      sid: auth.sessionId,
      amr: auth.amr,
    };
    if (auth.nonce) claims['nonce'] = auth.nonce;
    if (scopes.includes('profile') || scopes.includes('email')) {
      const user = auth.user ?? (await this.identity.getUser({ userId: auth.userId })).user;
      if (user) Object.assign(claims, userClaims(user, scopes));
    }
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid })
      .setIssuer(this.config.LEDGERLY_ISSUER)
      .setSubject(auth.userId)
      .setAudience(auth.clientId)
      .setIssuedAt(now)
      .setExpirationTime(now + this.config.LEDGERLY_ACCESS_TOKEN_TTL_SECONDS)
      .sign(key);
  }
}
