export * from './weights.js';
export * from './layers.js';
export * from './device_layers.js';
export * from './lazy_weights.js';
