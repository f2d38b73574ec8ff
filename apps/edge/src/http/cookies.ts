import { randomSecret } from '@ledgerly/chassis';
import type { Context } from 'koa';

/** The browser session with the platform (identity session token). */
export const SESSION_COOKIE = 'll_session';
/** A random per-browser secret that login-and-consent flows are bound to. */
export const BINDING_COOKIE = 'll_bb';

const base = (secure: boolean) => ({ httpOnly: true, sameSite: 'lax' as const, secure, path: '/', overwrite: true, signed: false });

/** The browser's binding secret, created on first use (lives for the browser session). */
export function browserBinding(ctx: Context, secure: boolean): string {
  const existing = ctx.cookies.get(BINDING_COOKIE);
  if (existing && /^[A-Za-z0-9_-]{32,64}$/.test(existing)) return existing;
  const value = randomSecret(32);
  ctx.cookies.set(BINDING_COOKIE, value, base(secure));
  return value;
}

export function existingBrowserBinding(ctx: Context): string {
  return ctx.cookies.get(BINDING_COOKIE) ?? '';
}

export function sessionToken(ctx: Context): string | undefined {
  return ctx.cookies.get(SESSION_COOKIE) || undefined;
}

export function setSessionCookie(ctx: Context, token: string, expires: Date, secure: boolean): void {
  ctx.cookies.set(SESSION_COOKIE, token, { ...base(secure), expires });
}

export function clearSessionCookie(ctx: Context, secure: boolean): void {
  ctx.cookies.set(SESSION_COOKIE, '', { ...base(secure), maxAge: 0 });
}
