// Parses an AsyncAPI document with the stock @asyncapi/parser and prints
// {"parsed", "errors": [...]}: the diagnostics of severity error (0). Run
// by tests/e2e/tests/e2e/contract.rs, which judges the verdict.
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";
import { readFileSync } from "node:fs";

const text = readFileSync(process.argv[2], "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const errors = diagnostics
  .filter((d) => d.severity === DiagnosticSeverity.Error)
  .map((d) => ({ code: d.code, path: d.path.join("/"), message: d.message }));
console.log(JSON.stringify({ parsed: document !== undefined, errors }));
