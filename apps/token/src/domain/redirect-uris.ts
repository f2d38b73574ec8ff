import { InvalidArgumentError } from '@ledgerly/chassis';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Checks a redirect URI at registration (RFC 6749 §3.1.2, RFC 9700 §4.1.3,
 * RFC 8252 §7): absolute, no fragment, no userinfo, no dot-segments or
 * encoded slashes; https, or http only on a loopback host, or a private-use
 * scheme (reverse domain name) for native apps. Matching at /authorize is an
 * exact string comparison against what is registered here.
 */
export function checkRedirectUri(value: string): string {
  const fail = (why: string) => new InvalidArgumentError(`Invalid redirect URI "${value}": ${why}`, 'invalid_redirect_uri');
  if (value.length === 0 || value.length > 2000) throw fail('it must be 1 to 2000 characters');
  if (/\s/.test(value)) throw fail('it must not contain white space');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw fail('it must be an absolute URI');
  }
  if (value.includes('#')) throw fail('it must not contain a fragment');
  if (url.username || url.password) throw fail('it must not contain user information');
  // Exact matching only (RFC 9700 §4.1.3): a pattern is not a URI to register.
  if (value.includes('*')) throw fail('it must not contain wildcards; register each URI exactly');
  // The path as sent: URL parsing would already have removed dot-segments.
  const rawPath = value.replace(/^[a-z][a-z0-9+.-]*:(\/\/[^/?#]*)?/i, '').split('?')[0] ?? '';
  if (/%2f|%5c/i.test(rawPath) || rawPath.split('/').some((segment) => /^(\.|%2e){1,2}$/i.test(segment))) {
    throw fail('it must not contain dot-segments or encoded slashes');
  }
  if (value.includes('\\')) throw fail('it must not contain a backslash');
  if (/%(0[0-9a-f]|1[0-9a-f]|7f)/i.test(value)) throw fail('it must not contain encoded control characters');
  if ((url.protocol === 'https:' || url.protocol === 'http:') && url.href !== value) {
    // Browsers go where the normalised form points: register that, exactly.
    throw fail(`it is not in normal form; register it as ${url.href}`);
  }
  if (url.protocol === 'https:') return value;
  if (url.protocol === 'http:') {
    if (LOOPBACK_HOSTS.has(url.hostname)) return value;
    throw fail('http is allowed only on a loopback host; use https');
  }
  if (/^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+:$/.test(url.protocol)) return value;
  throw fail('use https, http on loopback, or a private-use scheme such as com.example.app:/callback');
}
