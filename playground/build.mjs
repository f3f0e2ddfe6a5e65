// Bundles editor.js with esbuild (minified ES module) and collects the licenses of every
// package that ends up in the bundle. Output: OUT_DIR/editor.js, OUT_DIR/editor-licenses.txt.
// Deterministic: the same package-lock.json gives the same bytes.
import { build } from "esbuild";
import { readFileSync, writeFileSync, readdirSync, mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error("usage: node build.mjs OUT_DIR");
  process.exit(2);
}
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: [join(here, "editor.js")],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  legalComments: "none",
  charset: "utf8",
  metafile: true,
  write: false,
  absWorkingDir: here,
});
const banner = "/* CodeMirror 6 (MIT) and its dependencies, bundled by scripts/build-playground;" +
  " licenses: /playground/editor-licenses.txt */\n";
writeFileSync(join(out, "editor.js"), banner + result.outputFiles[0].text);

// node_modules/<pkg> (or @scope/pkg) of every input file.
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (m) packages.add(m[1]);
}
let text = "Third-party code in the playground's editor bundle (editor.js)\n";
for (const name of [...packages].sort()) {
  const dir = join(here, "node_modules", name);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const file = readdirSync(dir).filter((f) => /^(licen[cs]e|copying)/i.test(f)).sort()[0];
  text += `\n==== ${name} ${pkg.version} (${pkg.license || "see below"}) ====\n\n`;
  text += file ? readFileSync(join(dir, file), "utf8").trim() + "\n" : "(no license file shipped)\n";
}
writeFileSync(join(out, "editor-licenses.txt"), text);
