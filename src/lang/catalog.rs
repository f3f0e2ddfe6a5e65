//! Languages of the images in the store.

use crate::image::{Defaults, ImageStore, ResolvedImage};

use super::{LangError, Language};

fn language_of(image: &ResolvedImage) -> Result<Option<Language>, LangError> {
    let mut lang = Language::from_labels(&image.name, &image.config.labels)?;
    if let Some(l) = lang.as_mut() {
        let defaults = Defaults::of(&image.config, &image.rootfs);
        l.env = defaults.env;
        l.user = defaults.user;
    }
    Ok(lang)
}

/// Every language of every named image, sorted by language name, then image. Images with
/// broken labels are skipped (and logged).
pub fn list_languages(store: &ImageStore) -> Result<Vec<Language>, LangError> {
    let mut out = Vec::new();
    for info in store.list()? {
        if info.name == "<none>" {
            continue;
        }
        let reference = format!("{}:{}", info.name, info.tag);
        let image = match store.resolve(&reference) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("skipping image {reference}: {e}");
                continue;
            }
        };
        match language_of(&image) {
            Ok(Some(lang)) => out.push(lang),
            Ok(None) => {}
            Err(e) => tracing::warn!("skipping image {reference}: {e}"),
        }
    }
    out.sort_by(|a, b| (&a.name, &a.image).cmp(&(&b.name, &b.image)));
    Ok(out)
}

/// The language `wanted` names — a language name (`python`), `name:version`, or an image
/// reference — with its resolved image.
pub fn find_language(
    store: &ImageStore,
    wanted: &str,
) -> Result<(Language, ResolvedImage), LangError> {
    let langs = list_languages(store)?;
    let chosen = langs
        .iter()
        .find(|l| l.name == wanted)
        .or_else(|| {
            langs
                .iter()
                .find(|l| format!("{}:{}", l.name, l.version) == wanted)
        })
        .or_else(|| langs.iter().find(|l| l.image == wanted));
    if let Some(lang) = chosen {
        let image = store.resolve(&lang.image)?;
        return Ok((lang.clone(), image));
    }
    // An image reference the listing did not spell the same way (e.g. without `:latest`).
    if let Ok(image) = store.resolve(wanted) {
        if let Some(lang) = language_of(&image)? {
            return Ok((lang, image));
        }
    }
    Err(LangError::UnknownLanguage(wanted.to_owned()))
}
