import type { AccessGuard } from '@ledgerly/access';
import type { Logger, OnceKeys, PromiseClient } from '@ledgerly/chassis';
import type { AccountingServiceDefinition } from '@ledgerly/proto/accounting/v1/accounting';
import type { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import type { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import type { TokenServiceDefinition } from '@ledgerly/proto/token/v1/token';
import type { EdgeConfig } from './config.js';
import type { ClientDirectory } from './oauth/client-directory.js';

/** Everything the routes use; built once in service.ts. */
export interface EdgeDeps {
  config: EdgeConfig;
  logger: Logger;
  identity: PromiseClient<typeof IdentityServiceDefinition>;
  consent: PromiseClient<typeof ConsentServiceDefinition>;
  token: PromiseClient<typeof TokenServiceDefinition>;
  accounting: PromiseClient<typeof AccountingServiceDefinition>;
  /** Token verification, revocations, connections and scopes (libs/access). */
  access: AccessGuard;
  clients: ClientDirectory;
  /** DPoP proof ids seen in the last minute, shared by every edge instance (RFC 9449 §11.1). */
  dpopReplay: OnceKeys;
  /** False until the event views have caught up; the edge serves nothing before. */
  isReady: () => boolean;
  /** Health of the event feed and the size of the views, for /healthz. */
  health: () => Record<string, unknown>;
}
