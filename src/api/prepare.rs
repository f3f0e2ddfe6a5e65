//! From a [`RunRequest`] to a [`ValidatedSpec`]: decode files and stdin, pick the image,
//! apply the server's and the app's maxima (reject or clamp), validate.

use std::time::Duration;

use base64::Engine;

use super::config::{LimitsPolicy, ServeConfig};
use super::dto::{Encoding, LimitsInput, RunRequest};
use super::error::ApiError;
use super::images::ImageCatalog;
use super::store::App;
use crate::spec::{FileSpec, LimitBounds, Limits, RunSpec, StdinSource, ValidatedSpec};

fn decode(field: &str, text: &str, encoding: Encoding) -> Result<Vec<u8>, ApiError> {
    match encoding {
        Encoding::Utf8 => Ok(text.as_bytes().to_vec()),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| ApiError::bad_request("bad_base64", format!("{field}: {e}"))),
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
    if policy == LimitsPolicy::Clamp {
        l.wall_time = l.wall_time.min(bounds.max_wall_time);
        l.cpu_time = l.cpu_time.map(|c| c.min(bounds.max_cpu_time));
        l.memory = l.memory.map(|m| m.min(bounds.max_memory));
        l.pids = l.pids.map(|p| p.min(bounds.max_pids));
        l.output = l.output.min(bounds.max_output);
        l.disk = l.disk.min(bounds.max_disk);
        l.open_files = l.open_files.min(bounds.max_open_files);
    }
    Ok(l)
}

/// A request ready for the launcher.
#[derive(Debug)]
pub struct Prepared {
    pub image: String,
    pub spec: ValidatedSpec,
}

/// Checks and converts a request; every failure is a 4xx.
pub fn prepare(
    request: &RunRequest,
    config: &ServeConfig,
    catalog: &ImageCatalog,
    app: &App,
) -> Result<Prepared, ApiError> {
    let language = match &request.language {
        Some(name) => Some(catalog.language(name).ok_or_else(|| {
            ApiError::unprocessable("unknown_language", format!("no language named {name:?}"))
        })?),
        None => None,
    };
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
    let image = catalog.image(&image_name).ok_or_else(|| {
        ApiError::unprocessable("unknown_image", format!("no image named {image_name:?}"))
    })?;
    let argv = match (&request.cmd, language) {
        (Some(cmd), _) => cmd.clone(),
        (None, Some(lang)) => lang.cmd.clone(),
        (None, None) => {
            return Err(ApiError::unprocessable(
                "invalid_spec",
                "cmd is required without a language",
            ))
        }
    };

    let mut spec = RunSpec::new(&image.rootfs, argv);
    for (i, f) in request.files.iter().enumerate() {
        let content = decode(&format!("files[{i}].content"), &f.content, f.encoding)?;
        let path = match language {
            // The first file is the program's source, stored under the language's name.
            Some(lang) if i == 0 => lang.source_file.clone(),
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
    spec.env = request
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let bounds = bounds_for(config, app);
    spec.limits = limits_from(
        &request.limits,
        &config.default_limits,
        &bounds,
        config.limits_policy,
    )?;
    spec.allow_degraded = config.allow_degraded;
    let spec = spec.validate(&bounds)?;
    Ok(Prepared {
        image: image_name,
        spec,
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
        assert_eq!(status(&r), Some(400));
    }

    #[test]
    fn clamping_lowers_limits_to_the_maximum() {
        let (mut config, catalog) = setup();
        config.limits_policy = LimitsPolicy::Clamp;
        let mut r = request();
        r.limits.wall_time = Some(1 << 40);
        let p = prepare(&r, &config, &catalog, &anonymous_app()).unwrap();
        assert_eq!(
            p.spec.spec().limits.wall_time,
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
