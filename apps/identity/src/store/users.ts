import { AlreadyExistsError, isDuplicateKeyError } from '@ledgerly/chassis';
import type { Collection, Db } from 'mongodb';
import { randomUUID } from 'node:crypto';

export interface UserDoc {
  _id: string;
  email: string;
  /** Lower-cased and trimmed: the unique key. */
  emailKey: string;
  name: string;
  passwordHash: string;
  emailVerified: boolean;
  disabled: boolean;
  /** When last disabled; tokens issued before it stay refused even after re-enabling. */
  disabledAt?: Date | null;
  createdAt: Date;
}

export function emailKey(email: string): string {
  return email.trim().toLowerCase();
}

export class UserStore {
  private readonly users: Collection<UserDoc>;

  constructor(db: Db) {
    this.users = db.collection<UserDoc>('users');
  }

  async ensureIndexes(): Promise<void> {
    await this.users.createIndex({ emailKey: 1 }, { unique: true, name: 'email_unique' });
  }

  async create(input: { email: string; name: string; passwordHash: string }): Promise<UserDoc> {
    const doc: UserDoc = {
      _id: randomUUID(),
      email: input.email.trim(),
      emailKey: emailKey(input.email),
      name: input.name.trim(),
      passwordHash: input.passwordHash,
      emailVerified: false,
      disabled: false,
      createdAt: new Date(),
    };
    try {
      await this.users.insertOne(doc);
    } catch (err) {
      if (isDuplicateKeyError(err)) throw new AlreadyExistsError('A user with this email already exists', 'email_taken');
      throw err;
    }
    return doc;
  }

  async setDisabled(id: string, disabled: boolean, at: Date): Promise<boolean> {
    const set = disabled ? { disabled: true, disabledAt: at } : { disabled: false };
    const result = await this.users.updateOne({ _id: id }, { $set: set });
    return result.matchedCount === 1;
  }

  findById(id: string): Promise<UserDoc | null> {
    return this.users.findOne({ _id: id });
  }

  findByEmail(email: string): Promise<UserDoc | null> {
    return this.users.findOne({ emailKey: emailKey(email) });
  }
}
