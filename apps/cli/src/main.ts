#!/usr/bin/env node
import { RemoteError, Status } from '@ledgerly/chassis';
import { parseArgs } from 'node:util';
import { addressesFrom, COMMANDS, connect, UsageError, type Command } from './commands.js';

function help(command?: Command): string {
  if (command) {
    const lines = Object.entries(command.options).map(
      ([name, o]) => `  --${name}${o.type === 'string' ? ' <value>' : ''}${o.required ? '' : ' (optional)'}\n      ${o.description}`,
    );
    return `Usage: npm run cli -- ${command.words.join(' ')} [options]\n\n${command.summary}\n\nOptions:\n${lines.join('\n')}\n`;
  }
  const list = COMMANDS.map((c) => `  ${c.words.join(' ').padEnd(20)} ${c.summary}`).join('\n');
  return `Usage: npm run cli -- <command> [options]\n\nCommands:\n${list}\n\nServices are reached at LEDGERLY_IDENTITY_ADDR, LEDGERLY_CONSENT_ADDR and LEDGERLY_TOKEN_ADDR\n(defaults: the platform that npm start runs). Output is JSON on stdout.\n`;
}

/** Maps a failed call to a message a person can act on. */
function describe(err: RemoteError): string {
  if (err.unavailable) return `The ${err.service} is not reachable (${Status[err.code]}). Is the platform running (npm start)?`;
  return `${err.details} (${Status[err.code]}${err.reason ? `, ${err.reason}` : ''})`;
}

async function main(argv: string[]): Promise<number> {
  const [first, second, ...rest] = argv;
  if (!first || first === '--help' || first === 'help') {
    process.stdout.write(help());
    return first ? 0 : 2;
  }
  const command = COMMANDS.find((c) => c.words[0] === first && c.words[1] === second);
  if (!command) {
    process.stderr.write(`Unknown command: ${[first, second].filter(Boolean).join(' ')}\n\n${help()}`);
    return 2;
  }
  if (rest.includes('--help')) {
    process.stdout.write(help(command));
    return 0;
  }
  let values;
  try {
    ({ values } = parseArgs({ args: rest, options: command.options, strict: true, allowPositionals: false }));
    for (const [name, o] of Object.entries(command.options)) {
      if (o.required && values[name] === undefined) throw new UsageError(`--${name} is required`);
    }
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${help(command)}`);
    return 2;
  }
  let services: ReturnType<typeof connect>;
  try {
    services = command.offline ? ({ close: () => undefined } as ReturnType<typeof connect>) : connect(addressesFrom(process.env));
  } catch (err) {
    process.stderr.write(`Error: ${(err as Error).message}\nThe admin CLI authenticates with an operator certificate (LEDGERLY_TLS_CERT, default .data/pki/operator-local.crt, made by npm start or \`npm run cli -- pki init --dir .data/pki\`).\n`);
    return 1;
  }
  try {
    const result = await command.run(services, values);
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${help(command)}`);
      return 2;
    }
    process.stderr.write(`Error: ${err instanceof RemoteError ? describe(err) : (err as Error).message}\n`);
    return 1;
  } finally {
    services.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`Error: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
