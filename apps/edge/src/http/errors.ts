/**
 * Errors of the edge, one class per condition, each knowing its HTTP status.
 * Each route family turns them into its own wire format, through an
 * allow-list: OAuth JSON (RFC 6749 §5.2), redirects to the client
 * (§4.1.2.1), HTML pages, or Xero's API error bodies. Anything else becomes
 * a generic 500 with the details logged, never sent.
 */
export abstract class EdgeError extends Error {
  abstract readonly status: number;
  get expose(): boolean {
    return this.status < 500;
  }
  /** Seconds, for 503s. */
  retryAfter?: number;
}

// ---------------------------------------------------------------- OAuth (RFC 6749 §5.2, §4.1.2.1)

export abstract class OAuthError extends EdgeError {
  abstract readonly error: string;
  status = 400;
  constructor(readonly description: string) {
    super(description);
  }
}

export class InvalidRequest extends OAuthError {
  readonly error = 'invalid_request';
}
export class InvalidClient extends OAuthError {
  readonly error = 'invalid_client';
  override status = 401;
  /** Set when the client authenticated with the Authorization header (RFC 6749 §5.2). */
  challenge = false;
}
export class InvalidGrant extends OAuthError {
  readonly error = 'invalid_grant';
}
export class UnauthorizedClient extends OAuthError {
  readonly error = 'unauthorized_client';
}
export class UnsupportedGrantType extends OAuthError {
  readonly error = 'unsupported_grant_type';
}
export class InvalidScope extends OAuthError {
  readonly error = 'invalid_scope';
}
export class AccessDenied extends OAuthError {
  readonly error = 'access_denied';
  override status = 403;
}
export class UnsupportedResponseType extends OAuthError {
  readonly error = 'unsupported_response_type';
}
export class ConsentRequired extends OAuthError {
  readonly error = 'consent_required';
}
export class LoginRequired extends OAuthError {
  readonly error = 'login_required';
}
/** RFC 9449 §5: the DPoP proof at the token endpoint is missing or not valid. */
export class InvalidDpopProofError extends OAuthError {
  readonly error = 'invalid_dpop_proof';
}
export class ServerError extends OAuthError {
  readonly error = 'server_error';
  override status = 500;
}
export class TemporarilyUnavailable extends OAuthError {
  readonly error = 'temporarily_unavailable';
  override status = 503;
  override retryAfter = 1;
}

const OAUTH_ERRORS: Record<string, new (description: string) => OAuthError> = {
  invalid_request: InvalidRequest,
  invalid_client: InvalidClient,
  invalid_grant: InvalidGrant,
  unauthorized_client: UnauthorizedClient,
  unsupported_grant_type: UnsupportedGrantType,
  invalid_scope: InvalidScope,
  invalid_dpop_proof: InvalidDpopProofError,
};

/** The OAuth error for a reason code sent by the token service, if it is one. */
export function oauthErrorFor(reason: string | undefined, description: string): OAuthError | undefined {
  const ErrorClass = reason ? OAUTH_ERRORS[reason] : undefined;
  return ErrorClass ? new ErrorClass(description) : undefined;
}

// ---------------------------------------------------------------- API (Xero Accounting API 2.0)

/** Xero's problem-details shape, used for 401, 403, 404 and 503. */
export class ApiProblem extends EdgeError {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    /** RFC 6750 §3: the error of the WWW-Authenticate challenge on 401/403. */
    readonly bearerError?: 'invalid_token' | 'insufficient_scope' | 'invalid_request' | 'invalid_dpop_proof',
  ) {
    super(detail);
  }
}

export const unauthorized = (detail: string, bearerError?: 'invalid_token' | 'invalid_dpop_proof') => new ApiProblem(401, 'Unauthorized', detail, bearerError);
export const forbidden = (detail: string, bearerError?: 'insufficient_scope') => new ApiProblem(403, 'Forbidden', detail, bearerError);
export const notFound = (detail = "The resource you're looking for cannot be found") => new ApiProblem(404, 'NotFound', detail);
export const badRequest = (detail: string) => new ApiProblem(400, 'BadRequest', detail, 'invalid_request');
export function unavailable(detail = 'The service is temporarily unavailable. Try again shortly.'): ApiProblem {
  const problem = new ApiProblem(503, 'ServiceUnavailable', detail);
  problem.retryAfter = 1;
  return problem;
}

/** Xero's ValidationException (ErrorNumber 10), with the failing elements. */
export class ApiValidationError extends EdgeError {
  readonly status = 400;
  constructor(
    readonly elements: unknown[],
    message = 'A validation exception occurred',
  ) {
    super(message);
  }
}

/** Xero's PostDataInvalidException (ErrorNumber 14): the body is not what the endpoint takes. */
export class ApiPostDataInvalid extends EdgeError {
  readonly status = 400;
}

// ---------------------------------------------------------------- pages (login, consent, errors)

/** Shown as an HTML page, never a redirect (e.g. an unknown client or redirect URI). */
export class PageError extends EdgeError {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
  ) {
    super(detail);
  }
}
