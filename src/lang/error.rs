//! Errors of the language layer: unknown languages, bad labels, bad requests.

#[derive(Debug, thiserror::Error)]
pub enum LangError {
    #[error("no imported image provides language {0:?} (see `sandcell languages`)")]
    UnknownLanguage(String),
    #[error("image {image} has bad language labels: {message}")]
    BadLabels { image: String, message: String },
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error("no source file given")]
    NoSource,
    #[error("several files given and none is named {0:?}")]
    MissingSourceFile(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}
