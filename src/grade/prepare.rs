//! Turns a parsed [`Suite`] into a [`PreparedSuite`]: every file read, every glob expanded,
//! the image resolved, every limit checked. After this nothing about the suite can fail; only
//! cells can.

use std::collections::BTreeSet;

use super::checker_root;
use super::command::CommandSpec;
use super::comparator::{build_regex, Comparator};
use super::error::SuiteError;
use super::limits::{DefaultLimits, LimitsSpec};
use super::root::{ResolvedRoot, RootRef, RootResolver};
use super::source::{FileSource, SourceFile};
use super::suite::{find_line, CheckerSpec, FileRef, Suite, TestSpec};
use crate::spec::{check_relative_path, FileSpec, LimitBounds, Limits};

/// A file placed in the work dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxFile {
    /// Relative path inside the work dir.
    pub name: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

impl BoxFile {
    /// The file as a cell's run spec carries it.
    pub fn to_file(&self) -> FileSpec {
        FileSpec {
            path: self.name.clone(),
            content: self.content.clone(),
            mode: Some(self.mode),
        }
    }
}

/// A submission file given outside the suite (the CLI's `--submission`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedFile {
    pub name: String,
    pub file: SourceFile,
    /// The name was given explicitly (`PATH:NAME`), so it is never replaced by the
    /// language's source file name.
    pub renamed: bool,
}

/// One test, ready to run.
#[derive(Debug, Clone)]
pub struct PreparedTest {
    pub name: String,
    pub stdin: Vec<u8>,
    pub args: Vec<String>,
    pub expected: Vec<u8>,
    pub comparator: Comparator,
    /// The compiled pattern of a `regex` comparator.
    pub regex: Option<regex::Regex>,
    pub weight: f64,
    pub limits: Limits,
}

/// The checker, ready to build and run.
#[derive(Debug, Clone)]
pub struct PreparedChecker {
    pub root: ResolvedRoot,
    pub files: Vec<BoxFile>,
    pub compile: Option<Vec<String>>,
    pub compile_limits: Limits,
    pub run: Vec<String>,
    pub limits: Limits,
}

/// Everything a grading needs, in memory.
#[derive(Debug, Clone)]
pub struct PreparedSuite {
    pub name: String,
    pub root: ResolvedRoot,
    pub submission: Vec<BoxFile>,
    pub compile: Option<Vec<String>>,
    pub compile_limits: Limits,
    pub run: Vec<String>,
    pub env: Vec<(String, String)>,
    pub tests: Vec<PreparedTest>,
    pub checker: Option<PreparedChecker>,
}

/// Inputs of [`prepare`] besides the suite.
pub struct PrepareOptions<'a> {
    pub source: &'a dyn FileSource,
    pub resolver: &'a dyn RootResolver,
    /// Replaces the suite's `submission` files.
    pub submission: Option<Vec<SubmittedFile>>,
    /// The suite's text, to put line numbers on errors found after parsing.
    pub text: Option<&'a str>,
    /// Name used when the suite has none.
    pub default_name: String,
    pub bounds: LimitBounds,
}

struct Ctx<'a> {
    text: Option<&'a str>,
}

impl Ctx<'_> {
    fn err(
        &self,
        field: impl Into<String>,
        message: impl Into<String>,
        key: &str,
        value: &str,
        test: Option<usize>,
    ) -> SuiteError {
        let line = self.text.and_then(|t| find_line(t, key, value, test));
        SuiteError::new(field, message).at_line(line)
    }
}

/// Reads, resolves and checks everything the suite refers to.
pub fn prepare(suite: &Suite, opts: PrepareOptions<'_>) -> Result<PreparedSuite, SuiteError> {
    let ctx = Ctx { text: opts.text };
    let source = opts.source;

    let root_ref = root_ref(
        &ctx,
        suite.image.as_ref(),
        suite.language.as_ref(),
        suite.rootfs.as_ref(),
        "",
    )?
    .ok_or_else(|| {
        SuiteError::new(
            "image",
            "the suite names no image, language or rootfs to run in",
        )
    })?;
    let root = opts
        .resolver
        .resolve(&root_ref, source)
        .map_err(|e| ctx.err(root_field(&root_ref), e, root_field(&root_ref), "", None))?;
    let lang = root
        .language()
        .map_err(|e| ctx.err(root_field(&root_ref), e, root_field(&root_ref), "", None))?;

    let source_file = suite
        .source_file
        .clone()
        .or_else(|| lang.as_ref().map(|l| l.source_file.clone()));
    let submitted = match opts.submission {
        Some(files) => files,
        None => collect_files(&ctx, source, &suite.submission, "submission")?,
    };
    let submission = name_submission(submitted, source_file.as_deref())?;

    let compile = match (
        &suite.compile,
        lang.as_ref().and_then(|l| l.compile.as_ref()),
    ) {
        (Some(c), _) => Some(argv(&ctx, c, "compile")?),
        (None, Some(line)) => Some(argv(&ctx, &CommandSpec::Line(line.clone()), "compile")?),
        (None, None) => None,
    };
    let run = match (&suite.run, lang.as_ref().map(|l| &l.run)) {
        (Some(c), _) => argv(&ctx, c, "run")?,
        (None, Some(line)) => argv(&ctx, &CommandSpec::Line(line.clone()), "run")?,
        (None, None) => {
            return Err(SuiteError::new(
                "run",
                "no run command: give `run = ...` (the image has no org.sandcell.run label)",
            ))
        }
    };
    let compile_limits = checked_limits(
        &ctx,
        &suite.compile_limits,
        &DefaultLimits::compile(),
        &opts.bounds,
        "compile_limits",
        None,
    )?;

    let env = crate::image::merge_env(
        &root.env,
        suite
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );

    let checker = match &suite.checker {
        Some(spec) => Some(prepare_checker(
            &ctx,
            spec,
            &root,
            source,
            opts.resolver,
            &opts.bounds,
        )?),
        None => None,
    };

    let mut specs: Vec<(TestSpec, Option<usize>)> = suite
        .tests
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, t)| (t, Some(i)))
        .collect();
    if let Some(dir) = &suite.test_dir {
        specs.extend(tests_from_dir(
            &ctx,
            source,
            dir,
            suite.comparator,
            checker.is_some(),
        )?);
    }
    if specs.is_empty() {
        return Err(SuiteError::new(
            "tests",
            "the suite has no tests (add [[tests]] entries or test_dir = \"DIR\")",
        ));
    }

    let mut names = BTreeSet::new();
    let mut tests = Vec::with_capacity(specs.len());
    for (number, (spec, index)) in specs.iter().enumerate() {
        let test = prepare_test(
            &ctx,
            suite,
            spec,
            number,
            *index,
            source,
            checker.is_some(),
            &opts.bounds,
        )?;
        if !names.insert(test.name.clone()) {
            return Err(ctx.err(
                format!("tests[{number}].name"),
                format!("two tests are named {:?}", test.name),
                "name",
                &test.name,
                *index,
            ));
        }
        tests.push(test);
    }

    Ok(PreparedSuite {
        name: suite.name.clone().unwrap_or(opts.default_name),
        root,
        submission,
        compile,
        compile_limits,
        run,
        env,
        tests,
        checker,
    })
}

/// `image python (language python)` / `rootfs /srv/x` for messages.
fn describe_root(root: &ResolvedRoot) -> String {
    match root.labels.get(crate::lang::LABEL_LANGUAGE) {
        Some(lang) => format!("language {lang}"),
        None => format!("rootfs {}", root.rootfs.display()),
    }
}

fn root_field(r: &RootRef) -> &'static str {
    match r {
        RootRef::Rootfs(_) => "rootfs",
        RootRef::Image(_) => "image",
        RootRef::Language(_) => "language",
    }
}

fn root_ref(
    ctx: &Ctx<'_>,
    image: Option<&String>,
    language: Option<&String>,
    rootfs: Option<&String>,
    prefix: &str,
) -> Result<Option<RootRef>, SuiteError> {
    match (rootfs, image, language) {
        (Some(_), Some(_), _) => Err(ctx.err(
            format!("{prefix}rootfs"),
            "give either rootfs or image, not both",
            "rootfs",
            "",
            None,
        )),
        (Some(dir), None, _) => Ok(Some(RootRef::Rootfs(dir.clone()))),
        (None, Some(img), _) => Ok(Some(RootRef::Image(img.clone()))),
        (None, None, Some(lang)) => Ok(Some(RootRef::Language(lang.clone()))),
        (None, None, None) => Ok(None),
    }
}

fn argv(ctx: &Ctx<'_>, command: &CommandSpec, field: &str) -> Result<Vec<String>, SuiteError> {
    command
        .argv()
        .map_err(|e| ctx.err(field, e, field, "", None))
}

/// Expands file references (globs) into named files; every pattern must match something.
fn collect_files(
    ctx: &Ctx<'_>,
    source: &dyn FileSource,
    refs: &[FileRef],
    field: &str,
) -> Result<Vec<SubmittedFile>, SuiteError> {
    let mut out = Vec::new();
    for r in refs {
        let pattern = r.path();
        let fail = |msg: String| ctx.err(field, msg, field, pattern, None);
        let matches = source
            .glob(pattern)
            .map_err(|e| fail(format!("{pattern}: {e}")))?;
        if matches.is_empty() {
            return Err(fail(format!("{pattern}: no such file")));
        }
        for path in matches {
            let file = source
                .read(&path)
                .map_err(|e| fail(format!("{path}: {e}")))?;
            let (name, renamed) = match r {
                FileRef::Renamed { name, .. } => (name.clone(), true),
                FileRef::Path(_) => (basename(&path).to_string(), false),
            };
            out.push(SubmittedFile {
                name,
                file,
                renamed,
            });
        }
    }
    Ok(out)
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Names the files in the work dir: a lone file takes the language's source file name.
fn name_submission(
    files: Vec<SubmittedFile>,
    source_file: Option<&str>,
) -> Result<Vec<BoxFile>, SuiteError> {
    if files.is_empty() {
        return Err(SuiteError::new(
            "submission",
            "no submission files (give submission = [\"main.cpp\"] in the suite, or --submission)",
        ));
    }
    let single = files.len() == 1;
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let name = match source_file {
            Some(sf) if single && !f.renamed => sf.to_string(),
            _ => f.name,
        };
        check_relative_path("submission", &name)
            .map_err(|e| SuiteError::new("submission", e.to_string()))?;
        if !seen.insert(name.clone()) {
            return Err(SuiteError::new(
                "submission",
                format!("two submission files are named {name:?}"),
            ));
        }
        out.push(BoxFile {
            name,
            content: f.file.content,
            mode: f.file.mode,
        });
    }
    Ok(out)
}

fn checked_limits(
    ctx: &Ctx<'_>,
    spec: &LimitsSpec,
    defaults: &DefaultLimits,
    bounds: &LimitBounds,
    field: &str,
    test: Option<usize>,
) -> Result<Limits, SuiteError> {
    let limits = spec.to_limits(defaults);
    limits
        .check(bounds)
        .map_err(|e| ctx.err(field, e.to_string(), "limits", "", test))?;
    Ok(limits)
}

fn prepare_checker(
    ctx: &Ctx<'_>,
    spec: &CheckerSpec,
    suite_root: &ResolvedRoot,
    source: &dyn FileSource,
    resolver: &dyn RootResolver,
    bounds: &LimitBounds,
) -> Result<PreparedChecker, SuiteError> {
    let file_names: Vec<&str> = spec.files.iter().map(|f| f.path()).collect();
    let inferred = checker_root::language_of_files(file_names.iter().copied());
    let root = match root_ref(
        ctx,
        spec.image.as_ref(),
        spec.language.as_ref(),
        spec.rootfs.as_ref(),
        "checker.",
    )? {
        Some(r) => resolver.resolve(&r, source).map_err(|e| {
            ctx.err(
                format!("checker.{}", root_field(&r)),
                e,
                root_field(&r),
                "",
                None,
            )
        })?,
        // The checker's own language when the store has it; else the submission's root,
        // and the command check below says what to set if that cannot run it.
        None => checker_root::default_ref(suite_root, inferred)
            .and_then(|r| resolver.resolve(&r, source).ok())
            .unwrap_or_else(|| suite_root.clone()),
    };
    if spec.files.is_empty() {
        return Err(ctx.err(
            "checker.files",
            "the checker has no files",
            "files",
            "",
            None,
        ));
    }
    let files: Vec<BoxFile> = collect_files(ctx, source, &spec.files, "checker.files")?
        .into_iter()
        .map(|f| BoxFile {
            name: f.name,
            content: f.file.content,
            mode: f.file.mode,
        })
        .collect();
    let run = argv(ctx, &spec.run, "checker.run")?;
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    if let Some(program) = checker_root::program(&run) {
        if spec.compile.is_none() && !checker_root::image_has(&root, program, &names) {
            let set = match inferred {
                Some(lang) => format!("[checker] language = \"{lang}\""),
                None => "[checker] language = \"...\" or image = \"...\"".to_string(),
            };
            return Err(ctx.err(
                "checker.run",
                format!(
                    "{program:?} is not in the checker's image ({}); set {set} to run the \
                     checker in an image that has it",
                    describe_root(&root)
                ),
                "run",
                "",
                None,
            ));
        }
    }
    Ok(PreparedChecker {
        root,
        files,
        compile: spec
            .compile
            .as_ref()
            .map(|c| argv(ctx, c, "checker.compile"))
            .transpose()?,
        compile_limits: checked_limits(
            ctx,
            &LimitsSpec::default(),
            &DefaultLimits::compile(),
            bounds,
            "checker.limits",
            None,
        )?,
        run,
        limits: checked_limits(
            ctx,
            &spec.limits,
            &DefaultLimits::checker(),
            bounds,
            "checker.limits",
            None,
        )?,
    })
}

/// Tests from `NAME.in` / `NAME.out` pairs.
fn tests_from_dir(
    ctx: &Ctx<'_>,
    source: &dyn FileSource,
    dir: &str,
    comparator: Option<Comparator>,
    has_checker: bool,
) -> Result<Vec<(TestSpec, Option<usize>)>, SuiteError> {
    let names = source
        .list_dir(dir)
        .map_err(|e| ctx.err("test_dir", format!("{dir}: {e}"), "test_dir", "", None))?;
    let present: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let mut tests = Vec::new();
    for name in &names {
        let Some(stem) = name.strip_suffix(".in") else {
            continue;
        };
        let out = format!("{stem}.out");
        let expected_file = if present.contains(out.as_str()) {
            Some(format!("{dir}/{out}"))
        } else if has_checker && comparator == Some(Comparator::Checker) {
            None
        } else {
            return Err(ctx.err(
                "test_dir",
                format!("{dir}/{name} has no expected output {dir}/{out}"),
                "test_dir",
                "",
                None,
            ));
        };
        tests.push((
            TestSpec {
                name: Some(stem.to_string()),
                stdin_file: Some(format!("{dir}/{name}")),
                expected_file,
                ..TestSpec::default()
            },
            None,
        ));
    }
    if tests.is_empty() {
        return Err(ctx.err(
            "test_dir",
            format!("{dir} holds no NAME.in files"),
            "test_dir",
            "",
            None,
        ));
    }
    Ok(tests)
}

#[allow(clippy::too_many_arguments)]
fn prepare_test(
    ctx: &Ctx<'_>,
    suite: &Suite,
    spec: &TestSpec,
    number: usize,
    index: Option<usize>,
    source: &dyn FileSource,
    has_checker: bool,
    bounds: &LimitBounds,
) -> Result<PreparedTest, SuiteError> {
    let field = |f: &str| format!("tests[{number}].{f}");
    let name = spec
        .name
        .clone()
        .unwrap_or_else(|| format!("{:02}", number + 1));
    let read = |key: &str, path: &str| -> Result<Vec<u8>, SuiteError> {
        source
            .read(path)
            .map(|f| f.content)
            .map_err(|e| ctx.err(field(key), format!("{path}: {e}"), key, path, index))
    };
    let stdin = match (&spec.stdin, &spec.stdin_file) {
        (Some(_), Some(_)) => {
            return Err(ctx.err(
                field("stdin"),
                "give stdin or stdin_file, not both",
                "stdin",
                "",
                index,
            ))
        }
        (Some(text), None) => text.clone().into_bytes(),
        (None, Some(path)) => read("stdin_file", path)?,
        (None, None) => Vec::new(),
    };
    let comparator = spec.comparator.or(suite.comparator).unwrap_or_default();
    if comparator == Comparator::Checker && !has_checker {
        return Err(ctx.err(
            field("comparator"),
            "comparator \"checker\" needs a [checker] section with files and run",
            "comparator",
            "checker",
            if spec.comparator.is_some() {
                index
            } else {
                None
            },
        ));
    }
    let expected = match (&spec.expected_stdout, &spec.expected_file) {
        (Some(_), Some(_)) => {
            return Err(ctx.err(
                field("expected_stdout"),
                "give expected_stdout or expected_file, not both",
                "expected",
                "",
                index,
            ))
        }
        (Some(text), None) => text.clone().into_bytes(),
        (None, Some(path)) => read("expected_file", path)?,
        (None, None) if comparator == Comparator::Checker => Vec::new(),
        (None, None) => {
            return Err(ctx.err(
                field("expected_stdout"),
                format!("test {name:?} has no expected_stdout or expected_file"),
                "",
                "",
                index,
            ))
        }
    };
    let regex = if comparator == Comparator::Regex {
        let pattern = String::from_utf8_lossy(&expected);
        Some(build_regex(&pattern).map_err(|e| {
            ctx.err(
                field("expected_stdout"),
                format!("bad regex: {e}"),
                "expected",
                "",
                index,
            )
        })?)
    } else {
        None
    };
    let weight = spec.weight.unwrap_or(1.0);
    if !weight.is_finite() || weight < 0.0 {
        return Err(ctx.err(
            field("weight"),
            "must be a number >= 0",
            "weight",
            "",
            index,
        ));
    }
    let limits = checked_limits(
        ctx,
        &suite.limits.overridden_by(&spec.limits),
        &DefaultLimits::test(),
        bounds,
        &field("limits"),
        index,
    )?;
    Ok(PreparedTest {
        name,
        stdin,
        args: spec.args.clone(),
        expected,
        comparator,
        regex,
        weight,
        limits,
    })
}
