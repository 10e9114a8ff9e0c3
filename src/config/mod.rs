//! Typed settings: the TOML file, `${VAR}` expansion, `BOTGATE__` overrides, validation at load.
//!
//! The field names here are the interface users, docs and deployment files rely on: extend them,
//! never rename them. Loading goes `file text -> toml::Value -> env overrides -> ${VAR} expansion
//! -> typed Settings (serde, with the failing field's path) -> validate()`, and every error names
//! the field it is about.

mod dingtalk;
mod overlay;
#[cfg(test)]
mod tests;
mod types;
mod validate;
mod web;
mod wecom;

pub use dingtalk::{DingtalkMode, DingtalkReply, DingtalkSettings};
pub use types::*;
pub use web::WebSettings;
pub use wecom::{ReplyFormat, WecomSettings};

use std::path::{Path, PathBuf};

/// The example configuration, compiled in: what `botgate serve` runs with when given no file,
/// so a new user gets a working bot (rules only, no cloud account) from the first command.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../deploy/botgate.example.toml");

/// Why a configuration could not be loaded; `field` is the dotted path (`llm.main.api_key`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config is not valid TOML: {0}")]
    Syntax(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Where the settings came from, for the startup log line.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Embedded => f.write_str("embedded default"),
        }
    }
}

/// Loads settings from `path`, or the embedded default when `None`, applying the process
/// environment (both `${VAR}` references and `BOTGATE__SECTION__FIELD` overrides).
pub fn load(path: Option<&Path>) -> Result<(Settings, Source), ConfigError> {
    let (text, source) = match path {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?,
            Source::File(path.to_owned()),
        ),
        None => (EMBEDDED_DEFAULT.to_owned(), Source::Embedded),
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    let settings = parse(&text, &env)?;
    Ok((settings, source))
}

/// Parses configuration text against an explicit environment (tests pass their own).
pub fn parse(text: &str, env: &[(String, String)]) -> Result<Settings, ConfigError> {
    let mut value: toml::Value = toml::from_str(text).map_err(|error| {
        // toml's message quotes the offending line; a secret on a broken line would leak, so
        // keep only the first line, which names the position and the problem.
        let message = error.to_string();
        ConfigError::Syntax(message.lines().next().unwrap_or_default().to_owned())
    })?;
    overlay::apply_env_overrides(&mut value, env)?;
    overlay::expand_variables(&mut value, env, "")?;
    let settings: Settings = serde_path_to_error::deserialize(value).map_err(|error| {
        let field = error.path().to_string();
        ConfigError::invalid(field, error.into_inner().to_string())
    })?;
    validate::validate(&settings)?;
    Ok(settings)
}
