import type { Context } from 'koa';

/**
 * Sends the browser back to the client's redirect URI (RFC 6749 §4.1.2),
 * with `state` when the client sent one and `iss` always (RFC 9207 §2).
 * Only ever called with a redirect URI that exactly matches a registered one.
 */
export function redirectToClient(
  ctx: Context,
  redirectUri: string,
  issuer: string,
  params: Record<string, string | undefined>,
): void {
  const url = new URL(redirectUri);
  for (const [key, value] of Object.entries(params)) if (value) url.searchParams.set(key, value);
  url.searchParams.set('iss', issuer);
  seeOther(ctx, url.toString());
}

/**
 * Redirects; after a POST with 303, so the browser does not re-send the form
 * (RFC 9700 §4.11: never 307 for these redirects).
 */
export function seeOther(ctx: Context, location: string): void {
  ctx.set('Cache-Control', 'no-store');
  ctx.redirect(location);
  if (ctx.method === 'POST') ctx.status = 303;
}
