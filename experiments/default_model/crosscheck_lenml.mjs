#!/usr/bin/env node
// Encode texts with @lenml/tokenizers (the JS port of transformers.js, an implementation
// independent of ours) on a tokenizer.json made by `pvm tokenizer-train`, so that the ids can be
// compared with pvm::Tokenizer's (tests/base/test_tokenizer_train.cpp does).
//
//   node experiments/default_model/crosscheck_lenml.mjs TOKENIZER_DIR TEXTS.jsonl OUT.jsonl
//
// TEXTS.jsonl: one {"b64": base64 of the UTF-8 text} per line. OUT.jsonl: one {"ids": [...],
// "dec_b64": base64 of decode(ids)} per line (encode without added BOS/EOS).
// Packages come from third_party/npm (the README's set-up command), or from $PVM_NPM_DIR.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const npmDir = process.env.PVM_NPM_DIR || path.join(root, "third_party/npm");
const require = createRequire(path.join(npmDir, "package.json"));

const [dir, textsPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: crosscheck_lenml.mjs TOKENIZER_DIR TEXTS.jsonl OUT.jsonl");
  process.exit(2);
}
let TokenizerLoader;
try {
  ({ TokenizerLoader } = require("@lenml/tokenizers"));
} catch (e) {
  console.error(`crosscheck_lenml: cannot load @lenml/tokenizers from ${npmDir}: ${e.message}`);
  process.exit(3);
}
const tok = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf-8")),
  tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf-8")),
});
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const out = [];
for (const line of fs.readFileSync(textsPath, "utf-8").split("\n")) {
  if (!line) continue;
  const text = decoder.decode(Buffer.from(JSON.parse(line).b64, "base64"));
  const ids = tok.encode(text, { add_special_tokens: false });
  const dec = ids.length ? tok.decode(ids, { skip_special_tokens: false }) : "";
  out.push(JSON.stringify({ ids, dec_b64: Buffer.from(dec, "utf-8").toString("base64") }));
}
fs.writeFileSync(outPath, out.join("\n") + "\n");
console.log(`crosscheck_lenml: encoded ${out.length} texts`);
