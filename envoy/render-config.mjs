// Renders the Envoy config templates in this folder. The templates hold
// `${NAME}` (required) and `${NAME:-default}` placeholders; the defaults are
// the values docker-compose.yml uses, so the demo needs no variables at all,
// while the tests substitute loopback ports and temporary certificate paths.
// Envoy reads no environment itself, and GNU envsubst knows no defaults, so
// this one renderer serves the tests, the demo and anyone deploying by hand:
//
//   node envoy/render-config.mjs <template.yaml> <out.yaml>   (values from the environment)
//
// A placeholder without a value and without a default is an error naming it:
// a half-rendered config must never reach Envoy.
//
// Optional parts sit between two comment lines (so the template stays YAML):
//
//   #% if HOPWARDEN_MTLS
//   ...kept only when HOPWARDEN_MTLS is "true"...
//   #% end
//
// A condition is "true" or "false" (unset or empty: false); anything else is an
// error, so that a typo cannot quietly render the plaintext variant. Blocks do
// not nest, and placeholders inside a dropped block need no value.

import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const PLACEHOLDER = /\$\{([A-Z][A-Z0-9_]*)(?::-([^}]*))?\}/g;
const IF_LINE = /^[ \t]*#%[ \t]*if[ \t]+([A-Z][A-Z0-9_]*)[ \t]*\r?$/;
const END_LINE = /^[ \t]*#%[ \t]*end[ \t]*\r?$/;
const DIRECTIVE = /^[ \t]*#%/;

/**
 * Splits `template` into lines, each with the condition of the block it is in
 * (undefined outside blocks); directive lines are left out.
 * @param {string} template
 * @returns {{ line: string, condition: string | undefined }[]}
 */
function conditionalLines(template) {
  const out = [];
  let open;
  for (const [i, line] of template.split("\n").entries()) {
    const start = IF_LINE.exec(line);
    if (start) {
      if (open !== undefined) throw new Error(`line ${i + 1}: "#% if ${start[1]}" inside the block of ${open} (blocks do not nest)`);
      open = start[1];
    } else if (END_LINE.test(line)) {
      if (open === undefined) throw new Error(`line ${i + 1}: "#% end" without "#% if"`);
      open = undefined;
    } else if (DIRECTIVE.test(line)) {
      throw new Error(`line ${i + 1}: unknown directive ${JSON.stringify(line.trim())} (known: "#% if NAME", "#% end")`);
    } else {
      out.push({ line, condition: open });
    }
  }
  if (open !== undefined) throw new Error(`"#% if ${open}" has no "#% end"`);
  return out;
}

/**
 * Whether a condition holds: "true" or "false", unset or empty meaning false.
 * @param {string} name
 * @param {string | number | undefined} value
 * @returns {boolean}
 */
function conditionHolds(name, value) {
  if (value === undefined || value === "" || value === "false") return false;
  if (value === "true") return true;
  throw new Error(`\${${name}} must be "true" or "false", not ${JSON.stringify(String(value))}`);
}

/**
 * Substitutes every placeholder of `template` from `values` (or its default).
 * @param {string} template
 * @param {Readonly<Record<string, string | number | undefined>>} values
 * @returns {string}
 */
export function renderTemplate(template, values) {
  const missing = new Set();
  const kept = conditionalLines(template)
    .filter(({ condition }) => condition === undefined || conditionHolds(condition, values[condition]))
    .map(({ line }) => line)
    .join("\n");
  const out = kept.replace(PLACEHOLDER, (_match, name, fallback) => {
    const value = values[name];
    if (value !== undefined && value !== "") return String(value);
    if (fallback !== undefined) return fallback;
    missing.add(name);
    return "";
  });
  if (missing.size > 0) throw new Error(`no value for ${[...missing].map((n) => "${" + n + "}").join(", ")}`);
  const stray = out.match(/\$\{[^}]*\}/);
  if (stray) throw new Error(`malformed placeholder ${stray[0]} (names are upper case: \${NAME} or \${NAME:-default})`);
  return out;
}

/**
 * Lists the placeholders of `template` with their defaults (undefined when
 * required); a block's condition is listed too, with its default "false".
 * @param {string} template
 * @returns {Map<string, string | undefined>}
 */
export function templatePlaceholders(template) {
  const found = new Map();
  for (const { condition } of conditionalLines(template)) if (condition !== undefined) found.set(condition, "false");
  for (const m of template.matchAll(PLACEHOLDER)) {
    const name = /** @type {string} */ (m[1]);
    if (!found.has(name) || found.get(name) === undefined) found.set(name, m[2]);
  }
  return found;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [input, output] = process.argv.slice(2);
  if (input === undefined || output === undefined) {
    console.error("usage: node envoy/render-config.mjs <template.yaml> <out.yaml>");
    process.exit(2);
  }
  try {
    writeFileSync(output, renderTemplate(readFileSync(input, "utf8"), process.env));
  } catch (error) {
    console.error(`${input}: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
}
