export * from './binaries.js';
export * from './chromium.js';
export * from './infra.js';
export * from './paths.js';
export * from './platform.js';
export * from './process.js';
