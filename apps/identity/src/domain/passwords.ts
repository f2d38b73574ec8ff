import { type Algorithm, hash, verify } from '@node-rs/argon2';
import { InvalidArgumentError } from '@ledgerly/chassis';
import { randomBytes } from 'node:crypto';

/**
 * argon2id with OWASP's recommended minimum (19 MiB, t=2, p=1). Passwords
 * are 8 to 256 characters (NIST SP 800-63B §5.1.1.2: at least 8, allow long).
 */
// Algorithm.Argon2id is an ambient const enum (2); isolatedModules forbids reading it.
const OPTIONS = { algorithm: 2 satisfies Algorithm.Argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 256;

export function checkPasswordPolicy(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new InvalidArgumentError(`Password must be at least ${MIN_PASSWORD_LENGTH} characters`, 'weak_password');
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw new InvalidArgumentError(`Password must be at most ${MAX_PASSWORD_LENGTH} characters`, 'invalid_password');
  }
}

export function hashPassword(password: string): Promise<string> {
  return hash(password, OPTIONS);
}

/** A hash of a random password: verifying against it costs what a real check costs. */
let dummyHash: Promise<string> | undefined;
const dummy = () => (dummyHash ??= hashPassword(randomBytes(32).toString('base64url')));

/**
 * Checks a password against a stored hash. With no hash (unknown user) it
 * still runs one argon2id verification, so both failures take the same time.
 */
export async function verifyPassword(storedHash: string | undefined, password: string): Promise<boolean> {
  const usable = password.length > 0 && password.length <= MAX_PASSWORD_LENGTH;
  const target = storedHash && usable ? storedHash : await dummy();
  const matches = await verify(target, usable ? password : 'x').catch(() => false);
  return matches && storedHash !== undefined && usable;
}
