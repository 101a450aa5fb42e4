export * from './dtype.js';
export * from './tensor.js';
export * from './backend.js';
export * as ops from './ops.js';
