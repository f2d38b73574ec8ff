/**
 * Is `requested` one of the `registered` redirect URIs? Exact, case-sensitive
 * string comparison (RFC 9700 §4.1.3), with one exception: a registered http
 * loopback IP literal (127.0.0.1 or [::1]) matches the same URI on any port
 * (RFC 8252 §7.3). Never "localhost", never https, never anything else.
 */
export function isRegisteredRedirectUri(registered: readonly string[], requested: string): boolean {
  return registered.some((uri) => uri === requested || loopbackMatch(uri, requested));
}

const LOOPBACK = /^http:\/\/(127\.0\.0\.1|\[::1\])(?::([1-9]\d{0,4}))?(\/[^#]*)?$/;

function loopbackMatch(registered: string, requested: string): boolean {
  const r = LOOPBACK.exec(registered);
  const q = LOOPBACK.exec(requested);
  // A port is 1 to 65535 (RFC 6335); anything else is no URI at all.
  if (!r || !q || Number(q[2] ?? 80) > 65535) return false;
  return r[1] === q[1] && (r[3] ?? '') === (q[3] ?? '');
}
