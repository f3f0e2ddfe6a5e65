//! The OpenAPI document, generated from the handlers' annotations and the wire types.

use std::sync::OnceLock;

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
