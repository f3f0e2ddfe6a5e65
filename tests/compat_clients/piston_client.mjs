// Drives sandcell's Piston API with the `piston-client` npm package, unmodified.
// Usage: node piston_client.mjs NODE_MODULES_DIR SERVER_URL. Prints one JSON object:
// case name -> what the client returned. tests/compat_clients.rs checks it.
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [modules, server] = process.argv.slice(2);
const require = createRequire(path.join(modules, "noop.js"));
const entry = require.resolve("piston-client");
const { default: piston } = await import(pathToFileURL(entry).href);

const client = piston({ server });
const C_HELLO = '#include <stdio.h>\nint main(void) { puts("hello from c"); return 0; }\n';
const CPP_HELLO = '#include <iostream>\nint main() { std::cout << "hello from c++" << std::endl; }\n';
const CPP_BROKEN = "int main() { return undefined_name; }\n";

const out = {};
out.runtimes = await client.runtimes();
out.c = await client.execute("c", C_HELLO);
out.cpp = await client.execute("c++", CPP_HELLO);
out.python = await client.execute("python", "print('hello from python')");
out.stdin = await client.execute("python", "print('hello, ' + input())", { stdin: "world" });
out.args = await client.execute("python", "import sys; print(sys.argv[1:])");
out.compile_error = await client.execute("c++", CPP_BROKEN);
out.timeout = await client.execute("python", "while True: pass", { runTimeout: 1000 });
out.runtime_error = await client.execute("python", "raise ValueError('boom')");
out.unknown = await client.execute({ language: "cobol", version: "*", files: [{ content: "x" }] });
console.log(JSON.stringify(out));
