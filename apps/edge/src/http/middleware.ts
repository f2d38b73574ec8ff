import { RemoteError, sanitizeRequestId, Status, withRequestContext, type Logger } from '@ledgerly/chassis';
import type { Middleware } from 'koa';
import { performance } from 'node:perf_hooks';
import { DPOP_ALGORITHMS } from '../oauth/dpop.js';
import { errorPage } from '../views/error-page.js';
import { PayloadTooLarge } from './body.js';
import {
  ApiPostDataInvalid,
  ApiProblem,
  ApiValidationError,
  EdgeError,
  InvalidClient,
  InvalidRequest,
  OAuthError,
  oauthErrorFor,
  PageError,
  ServerError,
  TemporarilyUnavailable,
  unavailable,
} from './errors.js';

/** Request id (x-request-id in and out), carried to gRPC calls; one access-log line per request. */
export function requestContext(logger: Logger): Middleware {
  const log = logger.child({ component: 'http' });
  return async (ctx, next) => {
    const requestId = sanitizeRequestId(ctx.get('x-request-id') || undefined);
    ctx.state['requestId'] = requestId;
    ctx.set('x-request-id', requestId);
    const started = performance.now();
    await withRequestContext({ requestId }, async () => {
      try {
        await next();
      } finally {
        // The path only: query strings can carry codes and state.
        log.info('HTTP request', { method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round((performance.now() - started) * 10) / 10 });
      }
    });
  };
}

/** Headers every response gets. Pages carry no scripts and may not be framed (clickjacking). */
export function securityHeaders(): Middleware {
  return async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'");
    await next();
  };
}

/** Until the revocation views have caught up, serve nothing that depends on them. */
export function readinessGate(isReady: () => boolean): Middleware {
  return async (ctx, next) => {
    if (!isReady() && ctx.path !== '/healthz') {
      ctx.status = 503;
      ctx.set('Retry-After', '1');
      ctx.body = { error: 'temporarily_unavailable', error_description: 'The service is starting' };
      return;
    }
    await next();
  };
}

/** What a failed gRPC call means to the edge, for any route family. */
function fromRemote(err: RemoteError): EdgeError | undefined {
  if (err.unavailable) return new TemporarilyUnavailable('A service is temporarily unavailable. Try again shortly.');
  return undefined;
}

function logUnexpected(logger: Logger, err: unknown): void {
  logger.error('Request failed unexpectedly', { err });
}

/** RFC 6749 §5.2 JSON errors (the token endpoint). */
export function oauthJsonErrors(logger: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (raw) {
      let err: OAuthError;
      if (raw instanceof OAuthError) err = raw;
      else if (raw instanceof RemoteError) err = oauthErrorFor(raw.reason, raw.details) ?? fromRemoteOAuth(raw, logger);
      else if (raw instanceof EdgeError && raw.expose) {
        // A body the endpoint cannot read (too large, compressed): invalid_request with that status.
        err = new InvalidRequest(raw.message);
        err.status = raw.status;
      }
      else {
        logUnexpected(logger, raw);
        err = new ServerError('The server could not handle the request');
      }
      ctx.status = err.status;
      ctx.set('Cache-Control', 'no-store');
      ctx.set('Pragma', 'no-cache');
      if (err.retryAfter) ctx.set('Retry-After', String(err.retryAfter));
      if (err instanceof InvalidClient && err.challenge) ctx.set('WWW-Authenticate', 'Basic realm="ledgerly", charset="UTF-8"');
      ctx.body = { error: err.error, error_description: err.description };
    }
  };
}

function fromRemoteOAuth(err: RemoteError, logger: Logger): OAuthError {
  const mapped = fromRemote(err);
  if (mapped instanceof OAuthError) return mapped;
  logUnexpected(logger, err);
  return new ServerError('The server could not handle the request');
}

/** HTML error pages (the login and consent pages, and /authorize before the redirect URI is trusted). */
export function pageErrors(logger: Logger, platformName: string): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (raw) {
      let status = 500;
      let title = 'Something went wrong';
      let detail = 'The request could not be completed. Please try again.';
      if (raw instanceof PageError) {
        ({ status, title, detail } = raw);
      } else if (raw instanceof OAuthError && raw.expose) {
        status = raw.status;
        title = 'This request is not valid';
        detail = raw.description;
      } else if ((raw instanceof RemoteError && raw.unavailable) || raw instanceof TemporarilyUnavailable) {
        status = 503;
        title = 'Temporarily unavailable';
        detail = `${platformName} cannot complete this step right now. Please try again in a moment.`;
        ctx.set('Retry-After', '1');
      } else if (raw instanceof EdgeError && raw.expose) {
        status = raw.status;
        title = 'This request is not valid';
        detail = raw.message;
      } else {
        logUnexpected(logger, raw);
      }
      ctx.status = status;
      ctx.set('Cache-Control', 'no-store');
      ctx.type = 'html';
      ctx.body = errorPage(platformName, title, detail, String(ctx.state['requestId'] ?? ''));
    }
  };
}

/** Xero-style API errors: problem details, ValidationException, PostDataInvalidException. */
export function apiErrors(logger: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (raw) {
      const requestId = String(ctx.state['requestId'] ?? '');
      if (raw instanceof ApiValidationError) {
        ctx.status = 400;
        ctx.body = { ErrorNumber: 10, Type: 'ValidationException', Message: raw.message, Elements: raw.elements };
        return;
      }
      if (raw instanceof ApiPostDataInvalid || raw instanceof PayloadTooLarge) {
        ctx.status = raw.status;
        ctx.body = { ErrorNumber: 14, Type: 'PostDataInvalidException', Message: raw.message };
        return;
      }
      let problem: ApiProblem;
      if (raw instanceof ApiProblem) problem = raw;
      else if (raw instanceof RemoteError) problem = problemFromRemote(raw, logger);
      else if (raw instanceof EdgeError && raw.expose) problem = new ApiProblem(raw.status, STATUS_TITLES[raw.status] ?? 'BadRequest', raw.message);
      else {
        logUnexpected(logger, raw);
        problem = new ApiProblem(500, 'InternalServerError', 'An unexpected error occurred');
      }
      ctx.status = problem.status;
      if (problem.retryAfter) ctx.set('Retry-After', String(problem.retryAfter));
      if (problem.status === 401 || problem.bearerError) {
        // RFC 6750 §3: a challenge, with the error code when a token was sent.
        const error = problem.bearerError ? `, error="${problem.bearerError}", error_description="${problem.detail.replace(/"/g, "'")}"` : '';
        // RFC 9449 §7.1: a DPoP request gets a DPoP challenge, with the algorithms accepted.
        if (ctx.state['authScheme'] === 'DPoP') ctx.set('WWW-Authenticate', `DPoP algs="${DPOP_ALGORITHMS.join(' ')}"${error}`);
        else ctx.set('WWW-Authenticate', `Bearer realm="ledgerly"${error}`);
      }
      ctx.body = { Type: null, Title: problem.title, Status: problem.status, Detail: problem.detail, Instance: requestId, Extensions: {} };
    }
  };
}

const STATUS_TITLES: Record<number, string> = { 413: 'PayloadTooLarge', 415: 'UnsupportedMediaType' };

/** A failed call to accounting or consent, as the API caller should see it. */
function problemFromRemote(err: RemoteError, logger: Logger): ApiProblem {
  switch (err.code) {
    case Status.UNAVAILABLE:
    case Status.DEADLINE_EXCEEDED:
    case Status.CANCELLED:
      return unavailable();
    case Status.UNAUTHENTICATED:
      return new ApiProblem(401, 'Unauthorized', err.details, 'invalid_token');
    case Status.PERMISSION_DENIED:
      return new ApiProblem(403, 'Forbidden', err.details, err.reason === 'insufficient_scope' ? 'insufficient_scope' : undefined);
    case Status.NOT_FOUND:
      return new ApiProblem(404, 'NotFound', "The resource you're looking for cannot be found");
    case Status.INVALID_ARGUMENT:
    case Status.FAILED_PRECONDITION:
    case Status.ALREADY_EXISTS:
      return new ApiProblem(400, 'BadRequest', err.details);
    default:
      logUnexpected(logger, err);
      return new ApiProblem(500, 'InternalServerError', 'An unexpected error occurred');
  }
}
