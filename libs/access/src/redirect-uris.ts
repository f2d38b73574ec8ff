/**
 * Is `requested` one of the `registered` redirect URIs? Exact, case-sensitive
 * string comparison (RFC 9700 §4.1.3), with one exception: a registered http
 * loopback IP literal (127.0.0.1 or [::1]) matches the same URI on any port
 * (RFC 8252 §7.3). Never "localhost", never https, never anything else.
 */
export function isRegisteredRedirectUri(registered: readonly string[], requested: string): boolean {
  return registered.some((uri) => uri === requested || loopbackMatch(uri, requested));
}

const LOOPBACK = /^http:\/\/(127\.0\.0\.1|\[::1\])(?::\d{1,5})?(\/[^#]*)?$/;

function loopbackMatch(registered: string, requested: string): boolean {
  const r = LOOPBACK.exec(registered);
  const q = LOOPBACK.exec(requested);
  return Boolean(r && q && r[1] === q[1] && (r[2] ?? '') === (q[2] ?? ''));
}
