import { SCOPES } from '@ledgerly/access';
import type { Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';

/**
 * RFC 8414 authorization server metadata, which is also OpenID Connect
 * Discovery 1.0 §3 provider metadata. It says exactly what is supported.
 */
export function discoveryDocument(issuer: string): Record<string, unknown> {
  return {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    revocation_endpoint: `${issuer}/revoke`,
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    scopes_supported: [...SCOPES.keys()],
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['ES256'],
    // RFC 9207: every authorization response carries iss.
    authorization_response_iss_parameter_supported: true,
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'at_hash', 'sid', 'amr', 'name', 'given_name', 'family_name', 'email', 'email_verified'],
    claims_parameter_supported: false,
    request_parameter_supported: false,
    request_uri_parameter_supported: false,
  };
}

export function discovery(deps: EdgeDeps): Middleware {
  const body = discoveryDocument(deps.config.issuer);
  return (ctx) => {
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = body;
  };
}

/** The public signing keys (RFC 7517 §5), from the token service, cached for a minute. */
export function jwks(deps: EdgeDeps): Middleware {
  let cached: { json: string; at: number } | undefined;
  return async (ctx) => {
    if (!cached || Date.now() - cached.at > 60_000) {
      cached = { json: (await deps.token.getJwks({})).jwksJson, at: Date.now() };
    }
    ctx.set('Cache-Control', 'public, max-age=60');
    ctx.type = 'application/jwk-set+json';
    ctx.body = cached.json;
  };
}
