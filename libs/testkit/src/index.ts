export * from './assertions.js';
export * from './connect-app.js';
export * from './harness.js';
export * from './user-agent.js';
export * from './service-tests.js';
