import { type ClientType } from '@ledgerly/proto/token/v1/token';
import type { JSONWebKeySet } from 'jose';
import type { Collection, Db } from 'mongodb';

export type TokenEndpointAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none';

/** A custom connection: client_credentials on one organisation, as one user. */
export interface CustomConnectionDoc {
  tenantId: string;
  userId: string;
  scopes: string[];
  grantId: string;
}

export interface ClientDoc {
  /** client_id: 32 upper-case hex characters, as Xero's. */
  _id: string;
  name: string;
  type: ClientType;
  redirectUris: string[];
  /** SHA-256 (base64url) of the client secret; empty for public clients. */
  secretHash: string;
  tokenEndpointAuthMethod: TokenEndpointAuthMethod;
  grantTypes: string[];
  createdAt: Date;
  /** PKCE required (missing: true). Only a confidential client may have it optional. */
  pkceRequired?: boolean;
  /** RFC 9126 §6: authorization requests must be pushed. */
  requirePar?: boolean;
  /** private_key_jwt: the client's public keys. */
  jwks?: JSONWebKeySet | null;
  postLogoutRedirectUris?: string[];
  customConnection?: CustomConnectionDoc | null;
  /** Set while suspended (the platform's kill switch). */
  suspendedAt?: Date | null;
  /** The latest suspension, kept after reinstatement: what was issued before it stays dead. */
  lastSuspendedAt?: Date | null;
}

export class ClientStore {
  private readonly clients: Collection<ClientDoc>;

  constructor(db: Db) {
    this.clients = db.collection<ClientDoc>('clients');
  }

  async insert(doc: ClientDoc): Promise<void> {
    await this.clients.insertOne(doc);
  }

  async setSuspended(clientId: string, suspendedAt: Date | null): Promise<ClientDoc | null> {
    await this.clients.updateOne({ _id: clientId }, { $set: suspendedAt ? { suspendedAt, lastSuspendedAt: suspendedAt } : { suspendedAt: null } });
    return this.find(clientId);
  }

  async delete(clientId: string): Promise<void> {
    await this.clients.deleteOne({ _id: clientId });
  }

  async setCustomConnection(clientId: string, customConnection: CustomConnectionDoc): Promise<void> {
    await this.clients.updateOne({ _id: clientId }, { $set: { customConnection } });
  }

  /**
   * New client_ids are 32 upper-case hex characters, but any printable id up
   * to 200 characters is looked up (an imported client's id may hold "+", "%",
   * ":", spaces or non-ASCII: RFC 6749 §2.3.1 encodes them in Basic).
   */
  find(clientId: string): Promise<ClientDoc | null> {
    // eslint-disable-next-line no-control-regex
    if (clientId.length < 1 || clientId.length > 200 || /[\u0000-\u001f\u007f]/.test(clientId)) return Promise.resolve(null);
    return this.clients.findOne({ _id: clientId });
  }
}
