// Old module path of config.ts, kept so existing importers compile; new code imports './config.js'.
export * from './config.js';
