// Reads a checkpoint folder's tokenizer files into TokenizerParts.
//
// Precedence (as transformers' fast tokenizer): vocabulary and added tokens from tokenizer.json; else vocab.json +
// tokenizer_config.json `added_tokens_decoder`; else the offline o200k_base ranks + the built-in Phi-4-MM added tokens.
// Chat template: chat_template.jinja, else tokenizer_config.json `chat_template`, else the built-in template.
// Stop ids: generation_config.json `eos_token_id`, else [200020, 199999].

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BpeVocab, byteLevelToBinary, o200kVocab } from './bpe.js';
import { type AddedToken, DEFAULT_EOS_IDS, PHI4MM_ADDED_TOKENS } from './special_tokens.js';
import type { TokenizerParts } from './tokenizer.js';

/** Parsed vocabularies by file identity, so repeated loads of one checkpoint share the table. */
const vocabCache = new Map<string, BpeVocab>();

export function loadTokenizerDir(dir: string): TokenizerParts {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(`tokenizer folder not found: ${dir} (pass the checkpoint folder)`);
  }
  const config = readJson(join(dir, 'tokenizer_config.json'));
  const tokJson = readJson(join(dir, 'tokenizer.json'));
  const genConfig = readJson(join(dir, 'generation_config.json'));

  let vocab: BpeVocab;
  let addedTokens: readonly AddedToken[];
  let pattern: string | undefined;
  let source: string;
  const configAdded = config ? addedTokensFromConfig(config, dir) : undefined;
  if (tokJson) {
    const file = join(dir, 'tokenizer.json');
    const added = addedTokensFromTokenizerJson(tokJson, file);
    vocab = cachedVocab(file, () => vocabFromTokenizerJson(tokJson, file, new Set(added.map((t) => t.id))));
    addedTokens = added.length ? added : (configAdded ?? PHI4MM_ADDED_TOKENS);
    pattern = splitPattern(tokJson, file);
    source = file;
  } else if (existsSync(join(dir, 'vocab.json'))) {
    const file = join(dir, 'vocab.json');
    addedTokens = configAdded ?? PHI4MM_ADDED_TOKENS;
    const addedIds = new Set(addedTokens.map((t) => t.id));
    vocab = cachedVocab(file, () => vocabFromByteLevelMap(readJson(file), file, addedIds));
    source = file;
  } else {
    vocab = o200kVocab();
    addedTokens = configAdded ?? PHI4MM_ADDED_TOKENS;
    source = 'o200k_base (js-tiktoken)';
  }

  const templateFile = join(dir, 'chat_template.jinja');
  const chatTemplate = existsSync(templateFile) ? readFileSync(templateFile, 'utf8') : config ? templateFromConfig(config, dir) : undefined;
  const parts: TokenizerParts = { vocab, addedTokens, source };
  if (pattern !== undefined) parts.pattern = pattern;
  if (chatTemplate !== undefined) parts.chatTemplate = chatTemplate;
  const eos = tokenContent(config?.eos_token), bos = tokenContent(config?.bos_token), pad = tokenContent(config?.pad_token);
  if (eos !== undefined) parts.eosToken = eos;
  if (bos !== undefined) parts.bosToken = bos;
  if (pad !== undefined) parts.padToken = pad;
  parts.eosTokenIds = eosIds(genConfig, join(dir, 'generation_config.json'));
  return parts;
}

function readJson(file: string): any {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

function cachedVocab(file: string, build: () => BpeVocab): BpeVocab {
  const st = statSync(file);
  const key = `${file}\0${st.size}\0${st.mtimeMs}`;
  let v = vocabCache.get(key);
  if (!v) { v = build(); vocabCache.set(key, v); }
  return v;
}

function vocabFromTokenizerJson(json: any, file: string, addedIds: Set<number>): BpeVocab {
  const model = json.model;
  if (!model || typeof model !== 'object') throw new Error(`${file}: no "model" section`);
  if (model.type !== undefined && model.type !== 'BPE') throw new Error(`${file}: model type "${model.type}" is not supported (byte-level BPE only)`);
  if (json.normalizer) throw new Error(`${file}: normalizer "${json.normalizer.type}" is not supported (Phi-4 uses none)`);
  return vocabFromByteLevelMap(model.vocab, file, addedIds);
}

/** Byte-level token strings → ids. Added tokens are kept out of the BPE table: they are matched before BPE. */
function vocabFromByteLevelMap(map: unknown, file: string, addedIds: Set<number>): BpeVocab {
  if (!map || typeof map !== 'object') throw new Error(`${file}: vocabulary is not an object of token → id`);
  const ranks = new Map<string, number>();
  for (const [token, id] of Object.entries(map as Record<string, unknown>)) {
    if (!Number.isInteger(id) || (id as number) < 0) throw new Error(`${file}: token ${JSON.stringify(token)} has invalid id ${String(id)}`);
    if (addedIds.has(id as number)) continue;
    const bin = byteLevelToBinary(token);
    if (bin === undefined) throw new Error(`${file}: token ${JSON.stringify(token)} is not in the GPT-2 byte-level alphabet`);
    ranks.set(bin, id as number);
  }
  return new BpeVocab(ranks);
}

function addedTokensFromTokenizerJson(json: any, file: string): AddedToken[] {
  const list = json.added_tokens ?? [];
  if (!Array.isArray(list)) throw new Error(`${file}: "added_tokens" must be an array`);
  return list.map((t: any) => normalizeAdded(t, t?.id, file));
}

function addedTokensFromConfig(config: any, dir: string): AddedToken[] | undefined {
  const dec = config.added_tokens_decoder;
  if (!dec || typeof dec !== 'object') return undefined;
  return Object.entries(dec).map(([id, t]) => normalizeAdded(t, Number(id), join(dir, 'tokenizer_config.json')));
}

function normalizeAdded(t: any, id: unknown, file: string): AddedToken {
  if (!t || typeof t.content !== 'string' || !t.content || !Number.isInteger(id) || (id as number) < 0) {
    throw new Error(`${file}: malformed added token ${JSON.stringify(t)} (needs an integer id and non-empty content)`);
  }
  return {
    id: id as number,
    content: t.content,
    special: t.special === true,
    rstrip: t.rstrip === true,
    lstrip: t.lstrip === true,
    normalized: t.normalized === true,
    single_word: t.single_word === true,
  };
}

/** The Split regex of the pre-tokenizer, if any (Xenova/gpt-4o layout: Sequence[Split(Regex), ByteLevel]). */
function splitPattern(json: any, file: string): string | undefined {
  const pre = json.pre_tokenizer;
  const steps: any[] = !pre ? [] : pre.type === 'Sequence' ? pre.pretokenizers ?? [] : [pre];
  for (const step of steps) {
    if (step?.type === 'Split') {
      const regex = step.pattern?.Regex;
      if (typeof regex !== 'string') throw new Error(`${file}: Split pre-tokenizer without a Regex pattern is not supported`);
      return regex;
    }
  }
  return undefined;
}

function templateFromConfig(config: any, dir: string): string | undefined {
  const t = config.chat_template;
  if (t === undefined || t === null) return undefined;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.find((x: any) => x?.name === 'default') ?? t[0];
    if (typeof named?.template === 'string') return named.template;
  }
  throw new Error(`${join(dir, 'tokenizer_config.json')}: chat_template must be a string or a list of {name, template}`);
}

function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as any).content === 'string') return (v as any).content;
  return undefined;
}

function eosIds(genConfig: any, file: string): readonly number[] {
  const e = genConfig?.eos_token_id;
  if (e === undefined || e === null) return DEFAULT_EOS_IDS;
  const list = Array.isArray(e) ? e : [e];
  if (!list.every((x) => Number.isInteger(x) && x >= 0)) throw new Error(`${file}: eos_token_id must be an id or a list of ids, got ${JSON.stringify(e)}`);
  return list;
}
