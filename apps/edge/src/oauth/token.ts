import { parseScope } from '@ledgerly/access';
import { RemoteError } from '@ledgerly/chassis';
import type { TokenSet } from '@ledgerly/proto/token/v1/token';
import type { Context, Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { readForm } from '../http/body.js';
import { InvalidClient, InvalidDpopProofError, InvalidRequest, oauthErrorFor, TemporarilyUnavailable, UnsupportedGrantType } from '../http/errors.js';
import { readClientAuthentication } from './client-auth.js';
import { dpopHeader, InvalidDpopProof, verifyDpopProof, type ProofCheck } from './dpop.js';

type Authentication = ReturnType<typeof readClientAuthentication>;

/**
 * POST /token (RFC 6749 §3.2): the authorization_code, refresh_token and
 * client_credentials grants. POST only, form body only; parameters in the
 * query string are refused. With a DPoP proof (RFC 9449 §5), the tokens are
 * bound to its key.
 */
export function tokenEndpoint(deps: EdgeDeps): Middleware {
  const url = `${deps.config.issuer}/token`;
  return async (ctx) => {
    if (ctx.querystring) throw new InvalidRequest('Send token request parameters in the body, not the query string');
    const form = await readForm(ctx);
    const client = readClientAuthentication(ctx, form, url);
    const grantType = form.get('grant_type');
    let tokens: TokenSet;
    try {
      const proof = dpopProof(ctx);
      const dpopJkt = proof ? await checkProof(proof, { method: 'POST', url, replay: deps.dpopReplay }) : '';
      switch (grantType) {
        case 'authorization_code':
          tokens = await exchangeCode(deps, form, client, dpopJkt);
          break;
        case 'refresh_token':
          tokens = await refresh(deps, form, client, dpopJkt);
          break;
        case 'client_credentials': {
          const { tokens: issued } = await deps.token.clientCredentialsGrant({ client, scopes: parseScope(form.get('scope')), dpopJkt });
          tokens = issued!;
          break;
        }
        case undefined:
          throw new InvalidRequest('grant_type is required');
        default:
          throw new UnsupportedGrantType(`grant_type ${grantType} is not supported`);
      }
    } catch (err) {
      throw withChallenge(err, client.method === 'client_secret_basic');
    }
    sendTokens(ctx, tokens);
  };
}

/** The DPoP header, or the OAuth error for more than one. */
export function dpopProof(ctx: Context): string | undefined {
  try {
    return dpopHeader(ctx);
  } catch (err) {
    throw err instanceof InvalidDpopProof ? new InvalidDpopProofError(err.message) : err;
  }
}

export async function checkProof(proof: string, check: ProofCheck): Promise<string> {
  try {
    return await verifyDpopProof(proof, check);
  } catch (err) {
    if (err instanceof InvalidDpopProof) throw new InvalidDpopProofError(err.message);
    // The replay cache could not answer: fail closed.
    throw new TemporarilyUnavailable('The DPoP proof cannot be checked right now; try again shortly');
  }
}

async function exchangeCode(deps: EdgeDeps, form: Map<string, string>, client: Authentication, dpopJkt: string) {
  // Missing code or redirect_uri is the token service's to say, after it has
  // authenticated the client: a wrong secret is 401 whatever else is wrong.
  const { tokens } = await deps.token.exchangeAuthorizationCode({
    client,
    code: form.get('code') ?? '',
    redirectUri: form.get('redirect_uri') ?? '',
    codeVerifier: form.get('code_verifier') ?? '',
    dpopJkt,
  });
  return tokens!;
}

async function refresh(deps: EdgeDeps, form: Map<string, string>, client: Authentication, dpopJkt: string) {
  const { tokens } = await deps.token.refreshAccessToken({ client, refreshToken: form.get('refresh_token') ?? '', scopes: parseScope(form.get('scope')), dpopJkt });
  return tokens!;
}

/** invalid_client after Basic authentication carries a WWW-Authenticate challenge (RFC 6749 §5.2). */
export function withChallenge(err: unknown, basic: boolean): unknown {
  const mapped = err instanceof RemoteError ? (oauthErrorFor(err.reason, err.details) ?? err) : err;
  if (mapped instanceof InvalidClient) mapped.challenge = basic;
  return mapped;
}

/** RFC 6749 §5.1: the token response, never cached. */
export function sendTokens(ctx: Context, tokens: TokenSet): void {
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
  ctx.body = {
    access_token: tokens.accessToken,
    token_type: tokens.tokenType,
    expires_in: tokens.expiresIn,
    scope: tokens.scope,
    ...(tokens.refreshToken ? { refresh_token: tokens.refreshToken } : {}),
    ...(tokens.idToken ? { id_token: tokens.idToken } : {}),
  };
}
