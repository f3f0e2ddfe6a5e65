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

// Creates an editor in `parent`; `onRun` is called on Ctrl/Cmd+Enter.
export function createEditor(parent, { doc = "", language = "", label = "Source code", onRun }) {
  const mode = new Compartment();
  const view = new EditorView({
    parent,
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
        EditorView.contentAttributes.of({ "aria-label": label }),
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
