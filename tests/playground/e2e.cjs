// The playground in a real browser: Debian's chromium, headless, driven by playwright-core,
// against live daemons started by tests/playground_browser.rs (which passes everything in
// the environment). Every step waits for a state of the page, never for a time; each state
// is saved as a screenshot in $SCREENS.
//
//   ANON_URL    a daemon with playground_app (max 1 concurrent run, 10 s, 256 MiB)
//   KEYED_URL   a daemon with the playground but no anonymous runs
//   KEY         a valid key of KEYED_URL's daemon
//   KEYED_PID   that daemon's pid (the last step stops it: "server gone")
//   SCREENS     where screenshots go
//   CHROMIUM    the browser binary
"use strict";

const { chromium } = require("playwright-core");
const path = require("node:path");

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const ANON_URL = env("ANON_URL");
const KEYED_URL = env("KEYED_URL");
const KEY = env("KEY");
const KEYED_PID = Number(env("KEYED_PID"));
const SCREENS = env("SCREENS");
const CHROMIUM = env("CHROMIUM");

const problems = [];
let step = "start";

function check(condition, message) {
  if (!condition) throw new Error(`${step}: ${message}`);
}

function begin(name) {
  step = name;
  console.log(`e2e: ${name}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SCREENS, `${name}.png`), fullPage: true });
  console.log(`e2e:   screenshot ${name}.png`);
}

function watch(page, label) {
  page.on("console", (m) => {
    const text = m.text();
    if (/Content Security Policy|Refused to/i.test(text)) problems.push(`${label}: CSP: ${text}`);
  });
  page.on("pageerror", (e) => problems.push(`${label}: uncaught: ${e.message}`));
}

async function open(context, url, label) {
  const page = await context.newPage();
  page.setDefaultTimeout(120000);
  watch(page, label);
  await page.goto(url);
  return page;
}

const languagesLoaded = (page) =>
  page.waitForFunction(() => {
    const s = document.getElementById("language");
    return !s.disabled && s.options.length > 0 && s.value !== "";
  });

async function selectLanguage(page, name) {
  const value = await page.$eval(
    "#language",
    (s, name) => [...s.options].find((o) => o.textContent.split(" ")[0] === name)?.value,
    name,
  );
  check(value !== undefined, `no ${name} among the languages`);
  await page.getByLabel("Language", { exact: true }).selectOption(value);
}

// The editor's text, line by line (an empty line renders as a <br>: textContent "").
async function editorText(page) {
  return page.$$eval(".cm-line", (lines) => lines.map((l) => l.textContent).join("\n"));
}

async function setCode(page, code) {
  await page.getByLabel("Code editor", { exact: true }).click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(code);
}

async function setLimits(page, wall, cpu) {
  await page.getByLabel("Wall time (s)", { exact: true }).fill(String(wall));
  await page.getByLabel("CPU time (s)", { exact: true }).fill(String(cpu));
}

async function waitVerdict(page) {
  await page.waitForSelector("#verdict:not([hidden])");
  return (await page.textContent("#badge")).trim();
}

const stream = (page, which) =>
  page.$$eval(`#output .out-${which}`, (spans) => spans.map((s) => s.textContent).join(""));

// WCAG contrast ratio of an element's text against the first opaque background behind it.
async function contrast(page, selector) {
  return page.$eval(selector, (el) => {
    const parse = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    let bg = null;
    for (let n = el; n && !bg; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] === 1)) bg = c;
    }
    bg = bg || [255, 255, 255];
    const fg = parse(getComputedStyle(el).color);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    return (a + 0.05) / (b + 0.05);
  });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  try {
    // ---------------------------------------------------------------------------------
    begin("the page loads with its languages (anonymous playground)");
    const page = await open(context, ANON_URL, "anon");
    await languagesLoaded(page);
    check(!(await page.isVisible("#error")), `an error shows: ${await page.textContent("#error")}`);
    const langs = await page.$$eval("#language option", (o) => o.map((x) => x.textContent));
    check(langs.some((l) => /^python \d/.test(l)), `no python with a version in ${langs}`);
    check(langs.some((l) => /^cpp \d/.test(l)), `no cpp with a version in ${langs}`);
    // Every control has a label (getByLabel finds each exactly).
    for (const label of ["Language", "Code editor", "Standard input", "Wall time (s)", "CPU time (s)", "Memory (MiB)"]) {
      check((await page.getByLabel(label, { exact: true }).count()) === 1, `no control labelled ${label}`);
    }
    // The limits are bounded by the playground app's maxima.
    check((await page.getAttribute("#wall-time", "max")) === "10", "wall time max is not the app's 10 s");
    check((await page.getAttribute("#memory", "max")) === "256", "memory max is not the app's 256 MiB");
    await shot(page, "01-loaded");

    // ---------------------------------------------------------------------------------
    begin("keyboard focus order");
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    const order = [];
    const describe = () =>
      page.evaluate(() => {
        const a = document.activeElement;
        return a ? a.id || a.tagName.toLowerCase() : "none";
      });
    for (let i = 0; i < 10; i++) {
      await page.keyboard.press("Tab");
      let here = await describe();
      if (here === "editor") {
        order.push(here);
        // Tab indents in the editor; Esc then Tab moves on (CodeMirror's escape hatch).
        await page.keyboard.press("Escape");
        continue;
      }
      order.push(here);
    }
    const expected = ["summary", "language", "run", "share", "editor", "stdin", "wall-time", "cpu-time", "memory", "output"];
    check(JSON.stringify(order) === JSON.stringify(expected), `focus order ${order} is not ${expected}`);

    // ---------------------------------------------------------------------------------
    begin("Python: a program typed in the editor reads stdin; Ctrl+Enter runs it");
    await selectLanguage(page, "python");
    check((await editorText(page)).includes("Hello, world!"), "no hello world for python");
    await page.getByLabel("Code editor", { exact: true }).click();
    await page.keyboard.press("Control+A");
    await page.keyboard.press("Delete");
    // Typed key by key: the editor indents after the colon; Shift+Tab dedents.
    await page.keyboard.type("import sys\nfor line in sys.stdin:\n");
    await page.keyboard.type('print("hello,", line.strip(), flush=True)\n');
    await page.keyboard.press("Shift+Tab");
    await page.keyboard.type('print("done", file=sys.stderr');
    const typed = await editorText(page);
    const want = 'import sys\nfor line in sys.stdin:\n    print("hello,", line.strip(), flush=True)\nprint("done", file=sys.stderr)';
    check(typed === want, `the editor holds ${JSON.stringify(typed)}`);
    // Highlighted: the keyword is not in the text colour.
    const colours = await page.$$eval(".cm-line span", (spans) =>
      spans.map((s) => [s.textContent, getComputedStyle(s).color]),
    );
    const plain = await page.$eval(".cm-content", (c) => getComputedStyle(c).color);
    const keyword = colours.find(([t]) => t === "import");
    check(keyword && keyword[1] !== plain, `"import" is not highlighted: ${JSON.stringify(colours)}`);
    check((await page.locator(".cm-gutters .cm-lineNumbers").count()) === 1, "no line numbers");
    await page.getByLabel("Standard input", { exact: true }).fill("Ada\nGrace\n");
    await setLimits(page, 10, 5);
    await page.getByLabel("Code editor", { exact: true }).click();
    await page.keyboard.press("Control+Enter");
    let verdict = await waitVerdict(page);
    check(verdict === "OK", `verdict ${verdict}: ${await page.textContent("#verdict")} ${await page.textContent("#error")}`);
    check((await stream(page, "stdout")) === "hello, Ada\nhello, Grace\n", `stdout ${JSON.stringify(await stream(page, "stdout"))}`);
    check((await stream(page, "stderr")) === "done\n", `stderr ${JSON.stringify(await stream(page, "stderr"))}`);
    for (const id of ["wall", "cpu", "peak"]) {
      const t = await page.textContent(`#${id}`);
      check(/\d/.test(t), `${id} shows ${t}`);
    }
    for (const sel of ["body", ".note", "label[for=stdin]", "#run", "#badge", "#output .out-stderr", "footer a", "#status"]) {
      const ratio = await contrast(page, sel);
      check(ratio >= 4.5, `${sel} has contrast ${ratio.toFixed(2)} < 4.5`);
    }
    await shot(page, "02-python-ok");

    // ---------------------------------------------------------------------------------
    begin("phone width: nothing wider than the screen");
    await page.setViewportSize({ width: 375, height: 800 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `the page is ${overflow}px wider than a 375px screen`);
    await shot(page, "03-phone");
    await page.setViewportSize({ width: 1280, height: 860 });

    // ---------------------------------------------------------------------------------
    begin("output streams while the program runs; a second page is told busy, retrying");
    await setCode(page, 'import time\nprint("waiting", flush=True)\nwhile True:\n    time.sleep(1)\n');
    await page.getByLabel("Standard input", { exact: true }).fill("");
    await page.getByRole("button", { name: "Run", exact: true }).click();
    // The program never ends by itself: its output shows while it runs (streamed), before
    // any verdict.
    await page.waitForFunction(
      () =>
        document.getElementById("output").textContent.includes("waiting") &&
        document.getElementById("status").textContent.startsWith("Running"),
    );
    check(await page.isHidden("#verdict"), "a verdict shows while running");
    check(await page.isEnabled("#cancel"), "Cancel is not enabled while running");
    await shot(page, "04-streaming");

    const second = await open(context, ANON_URL, "anon-2");
    await languagesLoaded(second);
    await selectLanguage(second, "python");
    await setLimits(second, 10, 5);
    await second.getByRole("button", { name: "Run", exact: true }).click();
    await second.waitForFunction(() => document.getElementById("status").textContent.includes("busy, retrying"));
    await shot(second, "05-busy-retrying");

    begin("Cancel ends the run; the waiting page then runs");
    await page.getByRole("button", { name: "Cancel", exact: true }).click();
    verdict = await waitVerdict(page);
    check(verdict === "CANCELLED", `verdict ${verdict}`);
    check((await stream(page, "stdout")).includes("waiting"), "the output before cancel is gone");
    await shot(page, "06-cancelled");
    verdict = await waitVerdict(second);
    check(verdict === "OK", `second page: ${verdict}`);
    check((await stream(second, "stdout")) === "Hello, world!\n", "second page's output");
    await second.close();

    // ---------------------------------------------------------------------------------
    begin("an infinite loop ends in TO");
    await setCode(page, "while True:\n    pass\n");
    await setLimits(page, 3, 1);
    await page.getByRole("button", { name: "Run", exact: true }).click();
    verdict = await waitVerdict(page);
    check(verdict === "TO", `verdict ${verdict}: ${await page.textContent("#verdict")}`);
    check(/Time limit exceeded/.test(await page.textContent("#verdict-text")), "no TO text");
    await shot(page, "07-timeout");

    // ---------------------------------------------------------------------------------
    begin("C++: a compile error shows CE and the compiler's message");
    await selectLanguage(page, "cpp");
    await setLimits(page, 10, 5);
    await setCode(page, "#include <iostream>\nint main() {\n    std::cout << undeclared << std::endl;\n}\n");
    await page.getByRole("button", { name: "Run", exact: true }).click();
    verdict = await waitVerdict(page);
    check(verdict === "CE", `verdict ${verdict}`);
    await page.waitForSelector("#compile:not([hidden])");
    const compiler = await page.textContent("#compile-output");
    check(/error/.test(compiler) && compiler.includes("undeclared"), `compiler output: ${compiler}`);
    await shot(page, "08-compile-error");

    // ---------------------------------------------------------------------------------
    begin("a share link restores code, language and stdin");
    await selectLanguage(page, "python");
    const code = 'name = input()\nprint(f"héllo, {name} ✓")\n';
    await setCode(page, code);
    await page.getByLabel("Standard input", { exact: true }).fill("Linus\nsecond line\n");
    await page.getByRole("button", { name: "Share link", exact: true }).click();
    await page.waitForSelector("#share-box:not([hidden])");
    const link = await page.inputValue("#share-link");
    check(link.startsWith(ANON_URL) && link.includes("#"), `link ${link}`);
    const restored = await open(context, link, "shared");
    await languagesLoaded(restored);
    await restored.waitForFunction(() => document.querySelector("#stdin").value !== "");
    const lang = await restored.$eval("#language", (s) => s.options[s.selectedIndex].textContent);
    check(lang.startsWith("python"), `language ${lang}`);
    check((await editorText(restored)) === code, `code ${JSON.stringify(await editorText(restored))}`);
    check((await restored.inputValue("#stdin")) === "Linus\nsecond line\n", "stdin not restored");
    await restored.getByRole("button", { name: "Run", exact: true }).click();
    verdict = await waitVerdict(restored);
    check(verdict === "OK", `shared run: ${verdict}`);
    check((await stream(restored, "stdout")) === "héllo, Linus ✓\n", `shared run output ${await stream(restored, "stdout")}`);
    await shot(restored, "09-share-restored");
    await restored.close();

    // ---------------------------------------------------------------------------------
    begin("a server that needs a key: no key, a wrong key, the right key");
    const keyed = await open(context, KEYED_URL, "keyed");
    await keyed.waitForFunction(() => document.getElementById("error").textContent.includes("needs an API key"));
    check(await keyed.$eval("#key-panel", (d) => d.open), "the key panel is closed");
    check(await keyed.isDisabled("#run"), "Run is enabled without a key");
    await shot(keyed, "10-key-needed");
    await keyed.getByLabel("API key", { exact: true }).fill("sk_not_a_key");
    await keyed.getByRole("button", { name: "Save key", exact: true }).click();
    await keyed.waitForFunction(() => document.getElementById("error").textContent.includes("refused this API key"));
    await shot(keyed, "11-key-refused");
    await keyed.getByLabel("API key", { exact: true }).fill(KEY);
    await keyed.getByRole("button", { name: "Save key", exact: true }).click();
    await languagesLoaded(keyed);
    check(await keyed.isHidden("#error"), `error after the right key: ${await keyed.textContent("#error")}`);
    // Kept in localStorage: a reload needs no key again.
    await keyed.reload();
    await languagesLoaded(keyed);
    await selectLanguage(keyed, "python");
    await setLimits(keyed, 10, 5);
    await keyed.getByRole("button", { name: "Run", exact: true }).click();
    verdict = await waitVerdict(keyed);
    check(verdict === "OK", `keyed run: ${verdict} ${await keyed.textContent("#error")}`);

    // ---------------------------------------------------------------------------------
    begin("the server goes away: the page says so");
    process.kill(KEYED_PID, "SIGTERM");
    // Wait until the server refuses connections (the daemon drains, then exits): a state,
    // polled, with no bound but the test's own.
    for (;;) {
      try {
        await fetch(`${KEYED_URL}healthz`);
      } catch {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await keyed.getByRole("button", { name: "Run", exact: true }).click();
    await keyed.waitForFunction(() => document.getElementById("error").textContent.includes("Cannot reach the sandcell server"));
    await shot(keyed, "12-server-gone");
  } finally {
    await browser.close();
  }
  // Connection errors of the last step are expected; CSP violations and uncaught errors never.
  if (problems.length) throw new Error(`page problems:\n${problems.join("\n")}`);
  console.log("e2e: all steps passed");
}

main().catch((e) => {
  console.error(`e2e: FAILED: ${e.stack || e}`);
  process.exit(1);
});
