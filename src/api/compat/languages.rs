//! The language tables of the foreign APIs: Judge0's numeric ids and Piston's names and
//! aliases, each mapped to a sandcell language (a `[languages.NAME]` entry or a language of
//! the image store, exactly what `POST /v1/runs` takes as `"language"`).
//!
//! A language is offered only while the daemon can run it: the tables name what could be
//! served, [`offered`] what is installed now.

use crate::api::state::AppState;

/// Judge0 CE ids of the languages sandcell ships (Judge0's own numbering: every CE id of a
/// GCC C compiler is our `c`, of a GCC C++ compiler our `cpp`, of Python 3 our `python`,
/// Bash our busybox `sh`). `[judge0] languages` in the configuration adds more.
pub const JUDGE0_IDS: &[(u32, &str)] = &[
    (46, "sh"),
    (48, "c"),
    (49, "c"),
    (50, "c"),
    (103, "c"),
    (52, "cpp"),
    (53, "cpp"),
    (54, "cpp"),
    (105, "cpp"),
    (71, "python"),
    (92, "python"),
    (100, "python"),
    (113, "python"),
];

/// Piston's name and aliases for the languages sandcell ships.
pub const PISTON_NAMES: &[(&str, &str, &[&str])] = &[
    ("sh", "bash", &["sh"]),
    ("c", "c", &["gcc"]),
    ("cpp", "c++", &["cpp", "g++"]),
    ("python", "python", &["py", "py3", "python3"]),
];

/// A language this daemon can run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// The sandcell name (`"language"` of `POST /v1/runs`).
    pub name: String,
    /// As the image or configuration says (`12.2.0`, `1:1.35.0-4+b3`).
    pub version: String,
    pub source_file: String,
    pub compile: Option<String>,
    pub run: String,
}

impl Offered {
    /// The version without a Debian epoch or revision (`1:1.35.0-4+b3` -> `1.35.0`), as
    /// Piston and Judge0 clients compare versions.
    pub fn plain_version(&self) -> String {
        plain_version(&self.version)
    }
}

/// `1:1.35.0-4+b3` -> `1.35.0`; an empty version is `0.0.0`.
pub fn plain_version(v: &str) -> String {
    let v = v.split_once(':').map_or(v, |(_, rest)| rest);
    let v = v.split(['-', '+', '~']).next().unwrap_or("");
    if v.is_empty() {
        "0.0.0".into()
    } else {
        v.to_owned()
    }
}

/// Every language of the configuration and of the image store (configured names first; a
/// store language of the same name is shadowed, as `prepare` resolves names).
pub fn offered(state: &AppState) -> Vec<Offered> {
    let mut out: Vec<Offered> = state
        .catalog
        .languages()
        .map(|(name, l)| Offered {
            name: name.clone(),
            version: l.version.clone().unwrap_or_default(),
            source_file: l.source_file.clone(),
            compile: None,
            run: l.cmd.join(" "),
        })
        .collect();
    if let Some(store) = state.catalog.store() {
        match crate::lang::list_languages(store) {
            Ok(list) => {
                for l in list {
                    if out.iter().any(|o| o.name == l.name) {
                        continue;
                    }
                    out.push(Offered {
                        name: l.name,
                        version: l.version,
                        source_file: l.source_file,
                        compile: l.compile,
                        run: l.run,
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the store's languages"),
        }
    }
    out
}

/// One row of Judge0's language table.
#[derive(Debug, Clone)]
pub struct Judge0Language {
    pub id: u32,
    pub name: String,
    pub language: Offered,
}

/// Judge0's display name: `C (GCC 12.2.0)`, `Python (3.11.2)`.
fn judge0_name(l: &Offered) -> String {
    let v = l.plain_version();
    match l.name.as_str() {
        "c" => format!("C (GCC {v})"),
        "cpp" => format!("C++ (GCC {v})"),
        "python" => format!("Python ({v})"),
        "sh" => format!("Bash (busybox sh {v})"),
        other => format!("{other} ({v})"),
    }
}

/// The id -> language table with the configuration's additions, ordered by id.
pub fn judge0_table(state: &AppState) -> Vec<(u32, String)> {
    let mut table: std::collections::BTreeMap<u32, String> = JUDGE0_IDS
        .iter()
        .map(|(id, name)| (*id, name.to_string()))
        .collect();
    for (id, name) in &state.config.judge0.languages {
        if let Ok(id) = id.parse::<u32>() {
            table.insert(id, name.clone());
        }
    }
    table.into_iter().collect()
}

/// Judge0 languages this daemon can run now, by id.
pub fn judge0_languages(state: &AppState) -> Vec<Judge0Language> {
    let offered = offered(state);
    judge0_table(state)
        .into_iter()
        .filter_map(|(id, name)| {
            let language = offered.iter().find(|o| o.name == name)?.clone();
            Some(Judge0Language {
                id,
                name: judge0_name(&language),
                language,
            })
        })
        .collect()
}

/// One Piston runtime.
#[derive(Debug, Clone)]
pub struct PistonRuntime {
    pub language: String,
    pub aliases: Vec<String>,
    pub offered: Offered,
}

/// Piston runtimes: the shipped languages under Piston's names, any other language under
/// its sandcell name.
pub fn piston_runtimes(state: &AppState) -> Vec<PistonRuntime> {
    offered(state)
        .into_iter()
        .map(
            |o| match PISTON_NAMES.iter().find(|(ours, _, _)| *ours == o.name) {
                Some((_, name, aliases)) => PistonRuntime {
                    language: name.to_string(),
                    aliases: aliases.iter().map(|a| a.to_string()).collect(),
                    offered: o,
                },
                None => PistonRuntime {
                    language: o.name.clone(),
                    aliases: Vec::new(),
                    offered: o,
                },
            },
        )
        .collect()
}

/// Piston's version match: `*`/`x`, the exact version, or a prefix of dotted components
/// (`3` and `3.11` match `3.11.2`).
pub fn version_matches(wanted: &str, have: &str) -> bool {
    let wanted = wanted.trim();
    if wanted == "*" || wanted.eq_ignore_ascii_case("x") || wanted == have {
        return true;
    }
    let want: Vec<&str> = wanted.split('.').collect();
    let got: Vec<&str> = have.split('.').collect();
    want.len() <= got.len()
        && want
            .iter()
            .zip(&got)
            .all(|(w, g)| *w == "*" || w.eq_ignore_ascii_case("x") || w == g)
}

/// The runtime `language` (a name or an alias) at `version` names.
pub fn find_runtime<'a>(
    runtimes: &'a [PistonRuntime],
    language: &str,
    version: &str,
) -> Option<&'a PistonRuntime> {
    runtimes.iter().find(|r| {
        (r.language == language || r.aliases.iter().any(|a| a == language))
            && version_matches(version, &r.offered.plain_version())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_plain_and_match_like_piston() {
        assert_eq!(plain_version("1:1.35.0-4+b3"), "1.35.0");
        assert_eq!(plain_version("12.2.0"), "12.2.0");
        assert_eq!(plain_version(""), "0.0.0");
        assert!(version_matches("*", "3.11.2"));
        assert!(version_matches("3.11.2", "3.11.2"));
        assert!(version_matches("3", "3.11.2"));
        assert!(version_matches("3.x", "3.11.2"));
        assert!(!version_matches("3.10", "3.11.2"));
        assert!(!version_matches("3.11.2.1", "3.11.2"));
    }

    #[test]
    fn tables_name_each_id_and_alias_once() {
        let mut ids: Vec<u32> = JUDGE0_IDS.iter().map(|(id, _)| *id).collect();
        ids.dedup();
        assert_eq!(ids.len(), JUDGE0_IDS.len());
        let mut names: Vec<&str> = PISTON_NAMES
            .iter()
            .flat_map(|(_, n, a)| std::iter::once(*n).chain(a.iter().copied()))
            .collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
