//! Where a checker runs when the suite does not say, and whether that image can start its
//! command — both decided before any cell starts, so a suite author learns of a Python
//! checker in a C++ image from one clear message rather than an `XX` on every test.

use std::path::Path;

use super::root::{ResolvedRoot, RootRef};
use crate::lang::LABEL_LANGUAGE;
use crate::spec::DEFAULT_PATH;

/// The language a checker file is written in, by its extension (the first file that has a
/// known one): the image of that language can run it.
pub fn language_of_files<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    names.into_iter().find_map(|name| {
        let ext = Path::new(name).extension()?.to_str()?;
        match ext {
            "py" => Some("python"),
            "cpp" | "cc" | "cxx" => Some("cpp"),
            "c" => Some("c"),
            _ => None,
        }
    })
}

/// The checker's root when the suite names none: the image of the checker's own language
/// when it differs from the submission's, else the submission's.
pub fn default_ref(suite_root: &ResolvedRoot, checker_language: Option<&str>) -> Option<RootRef> {
    let lang = checker_language?;
    let suite_lang = suite_root.labels.get(LABEL_LANGUAGE).map(String::as_str);
    (suite_lang != Some(lang)).then(|| RootRef::Language(lang.to_string()))
}

/// The program an argv starts: its first word, or the first word of a `sh -c` line.
pub fn program(argv: &[String]) -> Option<&str> {
    match argv {
        [sh, c, line, ..] if sh == "/bin/sh" && c == "-c" => line.split_whitespace().next(),
        [first, ..] => Some(first.as_str()),
        [] => None,
    }
}

/// Whether `program` can be found in `root` as the cell would look it up: an absolute path
/// in the image, a bare name in the image's PATH. Relative paths (`./checker`, built by the
/// checker's compile step or shipped in its files) and shell built-ins are not checked.
pub fn image_has(root: &ResolvedRoot, program: &str, files: &[&str]) -> bool {
    if files.contains(&program) || program.starts_with('.') || is_shell_word(program) {
        return true;
    }
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    if let Some(abs) = program.strip_prefix('/') {
        return exists(&root.rootfs.join(abs));
    }
    if program.contains('/') {
        return true;
    }
    let path = root
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .any(|dir| exists(&root.rootfs.join(&dir[1..]).join(program)))
}

fn is_shell_word(word: &str) -> bool {
    matches!(
        word,
        "exec" | "test" | "[" | "cd" | "if" | "for" | "while" | "set" | "{" | "("
    ) || word.contains('=')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_by_extension() {
        assert_eq!(language_of_files(["checker.py"]), Some("python"));
        assert_eq!(language_of_files(["data.txt", "check.cpp"]), Some("cpp"));
        assert_eq!(language_of_files(["check.c"]), Some("c"));
        assert_eq!(language_of_files(["check.sh"]), None);
    }

    #[test]
    fn the_program_of_a_shell_line_is_its_first_word() {
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            program(&argv(&["/bin/sh", "-c", "python3 c.py \"$1\"", "sh"])),
            Some("python3")
        );
        assert_eq!(program(&argv(&["./checker", "a"])), Some("./checker"));
    }

    #[test]
    fn lookups_follow_the_image_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        std::fs::write(dir.path().join("usr/bin/python3"), "").unwrap();
        let root = ResolvedRoot::dir(dir.path());
        assert!(image_has(&root, "python3", &[]));
        assert!(image_has(&root, "/usr/bin/python3", &[]));
        assert!(!image_has(&root, "ruby", &[]));
        assert!(image_has(&root, "./checker", &[]));
        assert!(image_has(&root, "check.sh", &["check.sh"]));
    }
}
