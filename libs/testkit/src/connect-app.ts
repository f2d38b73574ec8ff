import { createHash, randomBytes } from 'node:crypto';
import type { Seed } from './harness.js';
import { authorizeInteractively, UserAgent } from './user-agent.js';

export interface AppTokens {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
  scope: string;
  expires_in: number;
}

/**
 * The whole authorization code flow with PKCE, as an app and a person do it:
 * the login and consent pages (ticking `organisations`), then the code
 * exchange with client_secret_basic. Returns the token response.
 */
export async function connectApp(
  issuer: string,
  seed: Seed,
  options: { scope: string; organisations: string[]; userAgent?: UserAgent },
): Promise<AppTokens> {
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL('/authorize', issuer);
  url.search = new URLSearchParams({
    client_id: seed.client.clientId,
    redirect_uri: seed.client.redirectUri,
    response_type: 'code',
    scope: options.scope,
    state: randomBytes(8).toString('hex'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  const { callback } = await authorizeInteractively(options.userAgent ?? new UserAgent(), url, {
    email: seed.user.email,
    password: seed.user.password,
    organisations: options.organisations,
  });
  const code = callback.searchParams.get('code');
  if (!code) throw new Error(`No code in ${callback.href}`);
  const res = await fetch(new URL('/token', issuer), {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${seed.client.clientId}:${seed.client.clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: seed.client.redirectUri, code_verifier: verifier }).toString(),
  });
  if (res.status !== 200) throw new Error(`Token request failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as AppTokens;
}
