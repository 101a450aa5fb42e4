import { compileJsonSchema, grammarRuntime, tokenTrieFor } from './src/constrained/index.js';
import { Phi4Tokenizer } from './src/text/tokenizer.js';
const tok = Phi4Tokenizer.offline();
let c0 = process.cpuUsage();
const trie = tokenTrieFor(tok);
let c = process.cpuUsage(c0);
console.log('trie cpu', ((c.user + c.system) / 1000).toFixed(0), 'ms; plain', trie.plain!.ids.length, 'rest', trie.plain!.rest.numNodes, 'nodes; maxChars', trie.plain!.maxChars);
const cpu = (f: () => void) => { const c0 = process.cpuUsage(); const t0 = performance.now(); f(); const c = process.cpuUsage(c0); return `cpu ${((c.user + c.system) / 1000).toFixed(2)} ms wall ${(performance.now() - t0).toFixed(1)} ms`; };
for (const schema of [{ type: 'string' }, { type: 'string', maxLength: 40 }]) {
  const g = compileJsonSchema(schema);
  const rt = grammarRuntime(g, trie);
  let s = rt.dfa.next(rt.dfa.start, 0x22);
  for (let k = 0; k < 4; k++) {
    let a: Int32Array | undefined, b: Int32Array | undefined;
    console.log(JSON.stringify(schema), k, 'fast', cpu(() => { a = rt.allowedIds(s); }), 'full', cpu(() => { b = rt.walk(s); }), a!.length, b!.length);
    s = rt.dfa.next(s, 0x61);
  }
}
