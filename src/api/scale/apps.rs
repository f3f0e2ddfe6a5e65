//! Apps and keys in Redis (API nodes and `sandcell app … --queue`): a hash per app and a
//! key-hash → name index, written together in one MULTI.

use std::collections::HashMap;

use redis::ConnectionLike;

use super::super::store::App;
use super::error::QueueError;
use super::keys;

fn fields(app: &App) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("key_hash", app.key_hash.clone()),
        ("max_concurrent", app.max_concurrent.to_string()),
    ];
    if let Some(v) = app.max_wall_time_ms {
        f.push(("max_wall_time_ms", v.to_string()));
    }
    if let Some(v) = app.max_memory {
        f.push(("max_memory", v.to_string()));
    }
    f
}

/// An app from its hash (None: no such app).
pub fn parse(name: &str, map: &HashMap<String, String>) -> Result<Option<App>, QueueError> {
    if map.is_empty() {
        return Ok(None);
    }
    let bad = |what: &str| QueueError::Malformed {
        key: keys::app(name),
        what: what.into(),
    };
    let opt = |field: &str| -> Result<Option<u64>, QueueError> {
        map.get(field)
            .map(|v| v.parse().map_err(|_| bad(field)))
            .transpose()
    };
    Ok(Some(App {
        name: name.to_string(),
        key_hash: map
            .get("key_hash")
            .cloned()
            .ok_or_else(|| bad("key_hash"))?,
        max_concurrent: map
            .get("max_concurrent")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("max_concurrent"))?,
        max_wall_time_ms: opt("max_wall_time_ms")?,
        max_memory: opt("max_memory")?,
    }))
}

/// Creates an app (`sandcell app create --queue`).
pub fn create(conn: &mut dyn ConnectionLike, app: &App) -> Result<(), QueueError> {
    let added: i64 = redis::cmd("SADD")
        .arg(keys::APPS)
        .arg(&app.name)
        .query(conn)?;
    if added == 0 {
        return Err(QueueError::AppExists(app.name.clone()));
    }
    redis::pipe()
        .atomic()
        .hset_multiple(keys::app(&app.name), &fields(app))
        .set(keys::app_key(&app.key_hash), &app.name)
        .query::<()>(conn)?;
    Ok(())
}

/// Every app, by name.
pub fn list(conn: &mut dyn ConnectionLike) -> Result<Vec<App>, QueueError> {
    let mut names: Vec<String> = redis::cmd("SMEMBERS").arg(keys::APPS).query(conn)?;
    names.sort();
    let mut apps = Vec::new();
    for name in names {
        if let Some(app) = by_name(conn, &name)? {
            apps.push(app);
        }
    }
    Ok(apps)
}

/// One app by name.
pub fn by_name(conn: &mut dyn ConnectionLike, name: &str) -> Result<Option<App>, QueueError> {
    let map: HashMap<String, String> = redis::cmd("HGETALL").arg(keys::app(name)).query(conn)?;
    parse(name, &map)
}

/// Deletes an app; its key stops working within the API nodes' key cache TTL.
pub fn delete(conn: &mut dyn ConnectionLike, name: &str) -> Result<(), QueueError> {
    let Some(app) = by_name(conn, name)? else {
        return Err(QueueError::NoSuchApp(name.to_string()));
    };
    redis::pipe()
        .atomic()
        .del(keys::app(name))
        .del(keys::app_key(&app.key_hash))
        .srem(keys::APPS, name)
        .query::<()>(conn)?;
    Ok(())
}
