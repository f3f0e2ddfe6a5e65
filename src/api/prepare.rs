//! From a [`RunRequest`] to the [`Work`] of a worker: decode files and stdin, pick the image
//! (configured directory or image store, with the store image's defaults) or the language
//! (configured, or a store image's labels: compile-then-run), apply the server's and the
//! app's maxima (reject or clamp), validate.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;

use super::config::{LimitsPolicy, ServeConfig};
use super::dto::{Encoding, LimitsInput, RunRequest};
use super::error::ApiError;
use super::images::{ImageCatalog, ServedImage, ServedLanguage};
use super::store::App;
use crate::image::ImageLease;
use crate::image::{Defaults, Given};
use crate::lang::{Language, SourceRequest};
use crate::spec::{FileSpec, LimitBounds, Limits, RunSpec, StdinSource, ValidatedSpec};

pub fn decode(field: &str, text: &str, encoding: Encoding) -> Result<Vec<u8>, ApiError> {
    match encoding {
        Encoding::Utf8 => Ok(text.as_bytes().to_vec()),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| ApiError::unprocessable("bad_base64", format!("{field}: {e}"))),
    }
}

/// The maxima that apply to `app`: the server's, tightened by the app's own.
pub fn bounds_for(config: &ServeConfig, app: &App) -> LimitBounds {
    let mut b = config.max_limits.clone();
    if let Some(ms) = app.max_wall_time_ms {
        b.max_wall_time = b.max_wall_time.min(Duration::from_millis(ms));
        b.max_cpu_time = b.max_cpu_time.min(Duration::from_millis(ms));
    }
    if let Some(mem) = app.max_memory {
        b.max_memory = b.max_memory.min(mem);
    }
    b
}

fn non_negative(field: &'static str, value: Option<i64>) -> Result<Option<u64>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if v < 0 => Err(ApiError::unprocessable(
            "invalid_spec",
            format!("limits.{field} must not be negative (got {v})"),
        )),
        Some(v) => Ok(Some(v as u64)),
    }
}

/// The request's limits over the defaults, clamped to `bounds` if the policy says so.
pub fn limits_from(
    input: &LimitsInput,
    defaults: &Limits,
    bounds: &LimitBounds,
    policy: LimitsPolicy,
) -> Result<Limits, ApiError> {
    let mut l = defaults.clone();
    if let Some(v) = non_negative("memory", input.memory)? {
        l.memory = Some(v);
    }
    if let Some(v) = non_negative("pids", input.pids)? {
        l.pids = Some(v);
    }
    if let Some(v) = non_negative("cpu_time", input.cpu_time)? {
        l.cpu_time = Some(Duration::from_millis(v));
    }
    if let Some(v) = non_negative("wall_time", input.wall_time)? {
        l.wall_time = Duration::from_millis(v);
    }
    if let Some(v) = non_negative("output", input.output)? {
        l.output = v;
    }
    if let Some(v) = non_negative("inodes", input.inodes)? {
        l.inodes = v;
    }
    if policy == LimitsPolicy::Clamp {
        l = clamp(l, bounds);
    }
    Ok(l)
}

/// What a worker does with a run.
#[derive(Debug)]
pub enum Work {
    /// One command in one cell.
    Command(Box<ValidatedSpec>),
    /// A source file of a store language: compile (if it compiles) and run, each in a cell.
    Source(Box<SourceWork>),
}

/// A store language's run, ready for [`crate::lang::run_source`].
#[derive(Debug)]
pub struct SourceWork {
    pub language: Language,
    pub rootfs: PathBuf,
    pub request: SourceRequest,
    pub bounds: LimitBounds,
}

/// A request ready for the launcher.
#[derive(Debug)]
pub struct Prepared {
    pub image: String,
    pub work: Work,
    /// Keeps a store image from being removed until the run ends.
    pub lease: Option<ImageLease>,
}

impl Prepared {
    /// The spec of a command run, or the spec of a source run's run step as checked at submit.
    pub fn command_spec(&self) -> Option<&ValidatedSpec> {
        match &self.work {
            Work::Command(spec) => Some(spec),
            Work::Source(_) => None,
        }
    }
}

/// Image config as defaults, as `sandcell run --image` does ([`Defaults::apply`]): the
/// command unless given, the environment (the request's wins), the working dir and the user
/// (a request can set neither). A configured rootfs without an image config has none.
fn apply_image_defaults(
    spec: &mut RunSpec,
    image: &ServedImage,
    given: Given,
) -> Result<(), crate::image::NoCommand> {
    let defaults = match &image.config {
        Some(config) => Defaults::of(config, &image.rootfs),
        None => Defaults::default(),
    };
    defaults.apply(spec, given)
}

/// The request's files, stdin, env and limits on `spec`, validated against the app's bounds.
pub fn fill_and_validate(
    mut spec: RunSpec,
    request: &RunRequest,
    with_env: bool,
    source_file: Option<&str>,
    config: &ServeConfig,
    bounds: &LimitBounds,
) -> Result<ValidatedSpec, ApiError> {
    for (i, f) in request.files.iter().enumerate() {
        let content = decode(&format!("files[{i}].content"), &f.content, f.encoding)?;
        let path = match source_file {
            // The first file is the program's source, stored under the language's name.
            Some(name) if i == 0 => name.to_owned(),
            _ => f.path.clone(),
        };
        spec.files.push(FileSpec {
            path,
            content,
            mode: Some(if f.executable { 0o755 } else { 0o644 }),
        });
    }
    if let Some(stdin) = &request.stdin {
        spec.stdin = StdinSource::Bytes(decode("stdin", stdin, request.stdin_encoding)?);
    }
    if with_env {
        spec.env
            .extend(request.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    spec.limits = limits_from(
        &request.limits,
        &config.default_limits,
        bounds,
        config.limits_policy,
    )?;
    spec.allow_degraded = config.allow_degraded;
    Ok(spec.validate(bounds)?)
}

/// Checks and converts a request; every failure is a 4xx (a broken image store is a 500).
pub fn prepare(
    request: &RunRequest,
    config: &ServeConfig,
    catalog: &ImageCatalog,
    app: &App,
) -> Result<Prepared, ApiError> {
    let bounds = bounds_for(config, app);
    let language = match &request.language {
        Some(name) => Some(catalog.serve_language(name)?),
        None => None,
    };
    let language = match language {
        Some(ServedLanguage::Store { language, lease }) => {
            return prepare_source(request, config, *language, *lease, bounds)
        }
        Some(ServedLanguage::Configured(entry)) => Some(entry),
        None => None,
    };
    if let Some(lang) = language {
        if request.image.is_some() {
            return Err(ApiError::unprocessable(
                "invalid_spec",
                format!(
                    "language {:?} picks its image ({:?}): give image or language, not both",
                    request.language.as_deref().unwrap_or_default(),
                    lang.image
                ),
            ));
        }
        if request.files.is_empty() {
            return Err(ApiError::unprocessable(
                "invalid_spec",
                "a language run needs its source in files",
            ));
        }
    }
    let image_name = match (&request.image, language) {
        (Some(image), _) => image.clone(),
        (None, Some(lang)) => lang.image.clone(),
        (None, None) => {
            return Err(ApiError::unprocessable(
                "invalid_spec",
                "give an image or a language",
            ))
        }
    };
    let image = catalog.serve_image(&image_name)?;
    let argv = match (&request.cmd, language) {
        (Some(cmd), _) => Some(cmd.clone()),
        (None, Some(lang)) => Some(lang.cmd.clone()),
        (None, None) => None,
    };
    let given = Given {
        command: argv.is_some(),
        cwd: false,
        user: false,
    };
    let mut spec = RunSpec::new(&image.rootfs, argv.unwrap_or_default());
    spec.env = request
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    apply_image_defaults(&mut spec, &image, given).map_err(|_| {
        ApiError::unprocessable(
            "invalid_spec",
            format!("cmd is required: image {image_name:?} has no default command"),
        )
    })?;
    let source_file = language.map(|l| l.source_file.as_str());
    // The request's env is already merged in (it wins over the image's).
    let spec = fill_and_validate(spec, request, false, source_file, config, &bounds)?;
    Ok(Prepared {
        image: image.name,
        work: Work::Command(Box::new(spec)),
        lease: image.lease,
    })
}

/// Lowers every limit to the bounds (compile steps use the server's compile defaults, which
/// a tight app may not allow).
fn clamp(mut l: Limits, bounds: &LimitBounds) -> Limits {
    l.wall_time = l.wall_time.min(bounds.max_wall_time);
    l.cpu_time = l.cpu_time.map(|c| c.min(bounds.max_cpu_time));
    l.memory = l.memory.map(|m| m.min(bounds.max_memory));
    l.pids = l.pids.map(|p| p.min(bounds.max_pids));
    l.output = l.output.min(bounds.max_output);
    l.disk = l.disk.min(bounds.max_disk);
    l.inodes = l.inodes.min(bounds.max_inodes);
    l.open_files = l.open_files.min(bounds.max_open_files);
    l
}

/// A store language: the request is checked now (as the run step's spec) so bad input is a
/// 4xx at submit, not a failed run later.
fn prepare_source(
    request: &RunRequest,
    config: &ServeConfig,
    language: Language,
    lease: ImageLease,
    bounds: LimitBounds,
) -> Result<Prepared, ApiError> {
    if request.image.is_some() || request.cmd.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_spec",
            format!(
                "language {:?} comes from an image's labels: give neither image nor cmd with it",
                language.name
            ),
        ));
    }
    if request.files.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_spec",
            "a language run needs its source in files",
        ));
    }
    let rootfs = lease.image.rootfs.clone();
    let probe = RunSpec::new(&rootfs, language.run_argv());
    let checked = fill_and_validate(probe, request, true, None, config, &bounds)?.into_inner();
    let mut source = SourceRequest::new(checked.files);
    source.stdin = checked.stdin;
    source.env = checked.env;
    source.run_limits = checked.limits;
    source.compile_limits = clamp(source.compile_limits, &bounds);
    source.allow_degraded = config.allow_degraded;
    Ok(Prepared {
        image: lease.image.name.clone(),
        work: Work::Source(Box::new(SourceWork {
            language,
            rootfs,
            request: source,
            bounds,
        })),
        lease: Some(lease),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::anonymous_app;
    use crate::api::config::ImageEntry;
    use crate::api::dto::FileInput;

    fn setup() -> (ServeConfig, ImageCatalog) {
        let mut config = ServeConfig::default();
        config.images.insert(
            "busybox".into(),
            ImageEntry {
                rootfs: "/nonexistent".into(),
            },
        );
        let catalog = ImageCatalog::from_config(&config);
        (config, catalog)
    }

    fn request() -> RunRequest {
        RunRequest {
            image: Some("busybox".into()),
            cmd: Some(vec!["true".into()]),
            ..RunRequest::default()
        }
    }

    #[test]
    fn bad_input_gets_the_right_status() {
        let (config, catalog) = setup();
        let app = anonymous_app();
        let status = |r: &RunRequest| {
            prepare(r, &config, &catalog, &app)
                .err()
                .map(|e| e.status.as_u16())
        };
        assert_eq!(status(&request()), None);
        let mut r = request();
        r.image = Some("nope".into());
        assert_eq!(status(&r), Some(422));
        let mut r = request();
        r.limits.memory = Some(-1);
        assert_eq!(status(&r), Some(422));
        let mut r = request();
        r.limits.wall_time = Some(1 << 40);
        assert_eq!(status(&r), Some(422));
        for path in ["../../etc/x", "/etc/x", "a/../../b"] {
            let mut r = request();
            r.files.push(FileInput {
                path: path.into(),
                content: "x".into(),
                encoding: Encoding::Utf8,
                executable: false,
            });
            assert_eq!(status(&r), Some(422), "{path}");
        }
        let mut r = request();
        r.files.push(FileInput {
            path: "a".into(),
            content: "!!not base64!!".into(),
            encoding: Encoding::Base64,
            executable: false,
        });
        assert_eq!(status(&r), Some(422));
    }

    #[test]
    fn clamping_lowers_limits_to_the_maximum() {
        let (mut config, catalog) = setup();
        config.limits_policy = LimitsPolicy::Clamp;
        let mut r = request();
        r.limits.wall_time = Some(1 << 40);
        let p = prepare(&r, &config, &catalog, &anonymous_app()).unwrap();
        assert_eq!(
            p.command_spec().unwrap().spec().limits.wall_time,
            config.max_limits.max_wall_time
        );
    }

    #[test]
    fn app_maxima_tighten_the_servers() {
        let (config, _) = setup();
        let mut app = anonymous_app();
        app.max_memory = Some(64 << 20);
        assert_eq!(bounds_for(&config, &app).max_memory, 64 << 20);
    }
}
