//! Health, readiness, metrics, the catalog of images and languages, and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::auth::{authorize, Caller};
use crate::api::dto::{Health, ImageInfo, ImageList, LanguageInfo, LanguageList};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, body = Health)), security(()))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: accepting runs (503 while shutting down).
#[utoipa::path(get, path = "/readyz", tag = "meta",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)), security(()))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.accepting()?;
    Ok(Json(Health {
        status: "ready".into(),
    }))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses(
        (status = 200, content_type = "text/plain", body = String),
        (status = 401, description = "Only when metrics are not public", body = ErrorBody),
    ),
    security((), ("bearer" = [])))]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.config.metrics_public {
        authorize(&state, &headers)?;
    }
    let (depth, scale_text) = crate::api::scale::metrics::queue_part(&state).await;
    let mut text = state.metrics.render(depth);
    text.push_str(&scale_text);
    text.push_str(&format!(
        "# HELP sandcell_long_lived_cells Long-lived cells alive now (/v1/cells).\n\
         # TYPE sandcell_long_lived_cells gauge\nsandcell_long_lived_cells {}\n",
        state.cells.count()
    ));
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Images runs may name: the configured ones, then the image store's (`name:tag`).
#[utoipa::path(get, path = "/v1/images", tag = "catalog",
    responses((status = 200, body = ImageList), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn images(State(state): State<AppState>, _caller: Caller) -> Json<ImageList> {
    let mut images: Vec<ImageInfo> = state
        .catalog
        .images()
        .map(|i| ImageInfo {
            name: i.name.clone(),
            source: "config".into(),
            id: None,
            size: None,
        })
        .collect();
    if let Some(store) = state.catalog.store() {
        match store.list() {
            Ok(list) => {
                images.extend(
                    list.into_iter()
                        .filter(|i| i.name != "<none>")
                        .map(|i| ImageInfo {
                            name: format!("{}:{}", i.name, i.tag),
                            source: "store".into(),
                            id: Some(i.id),
                            size: Some(i.size),
                        }),
                )
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the image store"),
        }
    }
    Json(ImageList { images })
}

/// Languages runs may name: the configured ones, then those of the store's images (by name,
/// `name:version` or image).
#[utoipa::path(get, path = "/v1/languages", tag = "catalog",
    responses((status = 200, body = LanguageList), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn languages(State(state): State<AppState>, _caller: Caller) -> Json<LanguageList> {
    let mut languages: Vec<LanguageInfo> = state
        .catalog
        .languages()
        .map(|(name, l)| LanguageInfo {
            name: name.clone(),
            version: l.version.clone(),
            image: l.image.clone(),
            source_file: l.source_file.clone(),
            cmd: l.cmd.clone(),
            compile: None,
            source: "config".into(),
        })
        .collect();
    if let Some(store) = state.catalog.store() {
        match crate::lang::list_languages(store) {
            Ok(list) => languages.extend(list.into_iter().map(|l| LanguageInfo {
                cmd: l.run_argv(),
                compile: l.compile_argv(),
                version: Some(l.version).filter(|v| !v.is_empty()),
                name: l.name,
                image: l.image,
                source_file: l.source_file,
                source: "store".into(),
            })),
            Err(e) => tracing::warn!(error = %e, "cannot list the store's languages"),
        }
    }
    Json(LanguageList { languages })
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, content_type = "application/json", body = Object)), security(()))]
pub async fn openapi(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::api::openapi::document_for(&state.config),
    )
        .into_response()
}
