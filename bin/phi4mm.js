#!/usr/bin/env node
// Entry point of the `phi4mm` command (compiled sources in dist/, built by `npm install`).
import { main } from '../dist/src/cli/main.js';

main().then((code) => {
  if (code !== 0) process.exit(code);
}, (e) => {
  console.error(e);
  process.exit(1);
});
