/** What a user is, as far as OpenID Connect claims go. */
export interface ClaimableUser {
  name: string;
  email: string;
  emailVerified: boolean;
}

/**
 * The standard claims (OpenID Connect Core §5.4) the scopes allow: name and
 * its parts with profile, email and email_verified with email. The same in
 * the ID token and at /userinfo.
 */
export function userClaims(user: ClaimableUser, scopes: Iterable<string>): Record<string, unknown> {
  const granted = new Set(scopes);
  const claims: Record<string, unknown> = {};
  if (granted.has('profile')) {
    claims['name'] = user.name;
    const [given, ...family] = user.name.split(' ');
    if (given) claims['given_name'] = given;
    if (family.length > 0) claims['family_name'] = family.join(' ');
  }
  if (granted.has('email')) {
    claims['email'] = user.email;
    claims['email_verified'] = user.emailVerified;
  }
  return claims;
}
