// The editor of sandcell's playground: CodeMirror 6 with the few modes the shipped images
// need. scripts/build-playground bundles this file into
// src/api/playground/assets/editor.js (committed; the daemon embeds it).
import { EditorState, Compartment, Prec } from "@codemirror/state";
import {
  EditorView, keymap, lineNumbers, highlightActiveLineGutter, highlightSpecialChars,
  drawSelection, highlightActiveLine,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, StreamLanguage,
  indentUnit,
} from "@codemirror/language";
import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { python } from "@codemirror/lang-python";
import { cpp } from "@codemirror/lang-cpp";
import { shell } from "@codemirror/legacy-modes/mode/shell";

// Syntax modes by the language names images carry (org.sandcell.language).
const MODES = {
  python: () => python(),
  cpp: () => cpp(),
  c: () => cpp(),
  sh: () => StreamLanguage.define(shell),
  busybox: () => StreamLanguage.define(shell),
};

function modeFor(name) {
  const make = MODES[name];
  return make ? make() : [];
}

// The page's look inside the editor (the page's stylesheet does not reach into its shadow
// root). Colours keep 4.5:1 contrast; the focus ring is the page's.
const theme = EditorView.theme({
  "&": { height: "100%", fontSize: "0.9rem", backgroundColor: "#fff", color: "#1b1b1b" },
  "&.cm-focused": { outline: "3px solid #b45309", outlineOffset: "-3px" },
  ".cm-scroller": { fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace', lineHeight: "1.45" },
  ".cm-gutters": { backgroundColor: "#f4f4f4", color: "#595959", borderRight: "1px solid #d0d0d0" },
  ".cm-activeLine": { backgroundColor: "#eef3ff" },
  ".cm-activeLineGutter": { backgroundColor: "#e2e8f6", color: "#1b1b1b" },
});

// Creates an editor in `parent`; `onRun` is called on Ctrl/Cmd+Enter.
//
// The editor lives in a shadow root of `parent`: CodeMirror then styles itself with
// constructed style sheets (adoptedStyleSheets) instead of inserting <style> elements, so the
// page's Content-Security-Policy can say `style-src 'self'` with no nonce and no
// 'unsafe-inline'.
export function createEditor(parent, { doc = "", language = "", label = "Source code", onRun }) {
  const mode = new Compartment();
  const root = parent.attachShadow({ mode: "open" });
  const view = new EditorView({
    parent: root,
    root,
    state: EditorState.create({
      doc,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        drawSelection(),
        indentOnInput(),
        indentUnit.of("    "),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        bracketMatching(),
        closeBrackets(),
        highlightActiveLine(),
        Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => { if (onRun) onRun(); return true; } }])),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, indentWithTab]),
        mode.of(modeFor(language)),
        theme,
        EditorView.contentAttributes.of({ "aria-label": label, "aria-multiline": "true" }),
      ],
    }),
  });
  return {
    view,
    getText: () => view.state.doc.toString(),
    setText: (text) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }),
    setLanguage: (name) => view.dispatch({ effects: mode.reconfigure(modeFor(name)) }),
    focus: () => view.focus(),
  };
}
