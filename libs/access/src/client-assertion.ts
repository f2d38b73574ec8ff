/**
 * private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9): the assertion
 * type, and the algorithms an assertion may be signed with — asymmetric only
 * (never "none", never HMAC: the client's key is public). The edge reads and
 * advertises them; the token service verifies with them.
 */
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export const ASSERTION_ALGORITHMS = ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA'];
