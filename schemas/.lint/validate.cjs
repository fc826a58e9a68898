// Validate YAML-as-JSON documents against the stack file schema with ajv in strict mode, the
// engine editors (yaml-language-server) and many pipelines use.
// Usage: node validate.cjs SCHEMA.json DOCS.json  (DOCS: {"name": document, ...})
// Prints {"name": [error, ...], ...}: an empty list for a valid document.
"use strict";
const fs = require("fs");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const [schemaPath, docsPath] = process.argv.slice(2);
const ajv = new Ajv2020({ strict: true, allErrors: true, unicodeRegExp: true });
addFormats(ajv);
const validate = ajv.compile(JSON.parse(fs.readFileSync(schemaPath, "utf8")));
const results = {};
for (const [name, doc] of Object.entries(JSON.parse(fs.readFileSync(docsPath, "utf8")))) {
  results[name] = validate(doc)
    ? []
    : validate.errors.map((e) => `${e.instancePath} ${e.message}`);
}
process.stdout.write(JSON.stringify(results));
