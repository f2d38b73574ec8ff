import { ServiceError, Status } from '@ledgerly/chassis';

/** RFC 6749 §5.2 (and RFC 6750 §3.1) error codes the token service returns. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_dpop_proof';

const STATUS: Record<OAuthErrorCode, Status> = {
  invalid_request: Status.INVALID_ARGUMENT,
  invalid_client: Status.UNAUTHENTICATED,
  invalid_grant: Status.INVALID_ARGUMENT,
  unauthorized_client: Status.PERMISSION_DENIED,
  unsupported_grant_type: Status.INVALID_ARGUMENT,
  invalid_scope: Status.INVALID_ARGUMENT,
  invalid_dpop_proof: Status.INVALID_ARGUMENT,
};

/**
 * An OAuth failure. The RFC error code travels as the gRPC error reason; the
 * edge turns it into the JSON error response with the matching HTTP status.
 */
export class OAuthError extends ServiceError {
  override readonly name = 'OAuthError';
  constructor(
    readonly error: OAuthErrorCode,
    description: string,
  ) {
    super(STATUS[error], description, error);
  }
}
