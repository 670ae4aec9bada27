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

import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const PLACEHOLDER = /\$\{([A-Z][A-Z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Substitutes every placeholder of `template` from `values` (or its default).
 * @param {string} template
 * @param {Readonly<Record<string, string | number | undefined>>} values
 * @returns {string}
 */
export function renderTemplate(template, values) {
  const missing = new Set();
  const out = template.replace(PLACEHOLDER, (_match, name, fallback) => {
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
 * Lists the placeholders of `template` with their defaults (undefined when required).
 * @param {string} template
 * @returns {Map<string, string | undefined>}
 */
export function templatePlaceholders(template) {
  const found = new Map();
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
