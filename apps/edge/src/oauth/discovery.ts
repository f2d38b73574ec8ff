import { ASSERTION_ALGORITHMS, SCOPES } from '@ledgerly/access';
import type { Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { DPOP_ALGORITHMS } from './dpop.js';

/**
 * RFC 8414 authorization server metadata, which is also OpenID Connect
 * Discovery 1.0 §3 provider metadata. It says exactly what is supported.
 */
export function discoveryDocument(issuer: string): Record<string, unknown> {
  const clientAuth = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];
  return {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    userinfo_endpoint: `${issuer}/userinfo`,
    end_session_endpoint: `${issuer}/session/end`,
    revocation_endpoint: `${issuer}/revoke`,
    revocation_endpoint_auth_methods_supported: [...clientAuth, 'none'],
    revocation_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGORITHMS,
    introspection_endpoint: `${issuer}/introspect`,
    introspection_endpoint_auth_methods_supported: clientAuth,
    introspection_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGORITHMS,
    // RFC 9126 §5.
    pushed_authorization_request_endpoint: `${issuer}/par`,
    require_pushed_authorization_requests: false,
    scopes_supported: [...SCOPES.keys()],
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: [...clientAuth, 'none'],
    token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGORITHMS,
    // RFC 9449 §5.1.
    dpop_signing_alg_values_supported: DPOP_ALGORITHMS,
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['ES256'],
    userinfo_signing_alg_values_supported: [],
    // RFC 9207: every authorization response carries iss.
    authorization_response_iss_parameter_supported: true,
    prompt_values_supported: ['none', 'login', 'consent', 'select_account'],
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'at_hash', 'sid', 'amr', 'name', 'given_name', 'family_name', 'email', 'email_verified'],
    claims_parameter_supported: false,
    request_parameter_supported: false,
    request_uri_parameter_supported: false,
    frontchannel_logout_supported: false,
    backchannel_logout_supported: false,
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
