// Old module path of mapping.ts, kept so existing importers compile; new code imports './mapping.js'.
export * from './mapping.js';
