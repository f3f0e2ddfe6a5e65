//! The OpenAPI document, generated from the handlers' annotations and the wire types.

use std::sync::OnceLock;

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::cells::routes as cells;
use super::routes::{events, gradings, meta, runs};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "sandcell", description = "Run untrusted code in throwaway Linux cells."),
    paths(
        runs::create_run, runs::get_run, runs::delete_run, runs::list_runs,
        events::run_events,
        gradings::create_grading, gradings::get_grading, gradings::grading_events,
        meta::images, meta::languages, meta::healthz, meta::readyz, meta::metrics, meta::openapi,
        cells::create_cell, cells::list_cells, cells::get_cell, cells::delete_cell,
        cells::exec, cells::get_exec, cells::exec_events,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

/// The document as JSON (built once).
pub fn document_json() -> String {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default())
        .clone()
}

/// The document with this server's bounds on `limits` (minimum and, when requests above a
/// maximum are rejected, maximum), so a request valid by the schema is accepted.
pub fn document_for(config: &super::config::ServeConfig) -> String {
    let text = document_json();
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&text) else {
        return text;
    };
    let m = &config.max_limits;
    let ms = |d: std::time::Duration| d.as_millis().min(i64::MAX as u128) as u64;
    let bounds: [(&str, u64, u64); 6] = [
        ("memory", crate::spec::MIB, m.max_memory),
        ("pids", crate::spec::MIN_PIDS, m.max_pids),
        ("cpu_time", 1, ms(m.max_cpu_time)),
        ("wall_time", 1, ms(m.max_wall_time)),
        ("output", 0, m.max_output),
        ("inodes", crate::spec::MIN_INODES, m.max_inodes),
    ];
    let reject = config.limits_policy == super::config::LimitsPolicy::Reject;
    if let Some(props) = doc
        .pointer_mut("/components/schemas/LimitsInput/properties")
        .and_then(|p| p.as_object_mut())
    {
        for (name, min, max) in bounds {
            if let Some(field) = props.get_mut(name).and_then(|f| f.as_object_mut()) {
                field.insert("minimum".into(), min.into());
                if reject {
                    field.insert("maximum".into(), max.into());
                }
            }
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or(text)
}
