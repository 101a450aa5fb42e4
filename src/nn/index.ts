export * from './weights.js';
export * from './layers.js';
