import { z } from 'zod';

/** Every configuration key of every app starts with this prefix. */
export const CONFIG_PREFIX = 'LEDGERLY_';

export class ConfigError extends TypeError {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/**
 * Validates an app's configuration from an environment, once, at start.
 * The schema's keys are the environment variable names, with their defaults.
 * A LEDGERLY_* variable that the schema does not know is refused, so a typo
 * stops the process instead of silently falling back to a default.
 */
export function loadConfig<S extends z.ZodRawShape>(
  shape: S,
  env: Record<string, string | undefined>,
): z.infer<z.ZodObject<S>> {
  const problems: string[] = [];
  for (const key of Object.keys(env)) {
    if (key.startsWith(CONFIG_PREFIX) && !(key in shape)) {
      problems.push(`${key}: unknown configuration key (known: ${Object.keys(shape).sort().join(', ')})`);
    }
  }
  const input: Record<string, string> = {};
  for (const key of Object.keys(shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const result = z.object(shape).safeParse(input);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const key = issue.path.join('.') || '(config)';
      const value = input[key];
      problems.push(`${key}: ${issue.message}${value !== undefined && !/SECRET|PASSWORD|KEY/.test(key) ? ` (got "${value}")` : ''}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return (result as { data: z.infer<z.ZodObject<S>> }).data;
}

/** "host:port" on which to listen; loopback by default (docs/security.md). */
export const listenAddress = (fallback: string) =>
  z
    .string()
    .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:50051')
    .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'port must be 0..65535')
    .default(fallback);

/** "host:port" of a peer service. */
export const peerAddress = listenAddress;

export const mongoUrl = (fallback: string) =>
  z.string().regex(/^mongodb(\+srv)?:\/\/.+/, 'expected a mongodb:// URL').default(fallback);

export const natsUrl = (fallback: string) =>
  z.string().regex(/^(nats|tls):\/\/.+/, 'expected a nats:// URL').default(fallback);

export const logLevel = () => z.enum(['debug', 'info', 'warn', 'error']).default('info');

export const httpUrl = (fallback: string) =>
  z
    .string()
    .url('expected an absolute URL')
    .refine((v) => /^https?:\/\//.test(v), 'expected an http(s) URL')
    .refine((v) => !v.endsWith('/'), 'must not end with "/"')
    .default(fallback);

export const milliseconds = (fallback: number) => z.coerce.number().int().min(1).max(3_600_000).default(fallback);
export const seconds = (fallback: number) => z.coerce.number().int().min(1).max(31_536_000).default(fallback);

export { z };
