//! Environment over the file: `BOTGATE__A__B=value` overrides and `${VAR}` expansion in strings.

use super::ConfigError;

const OVERRIDE_PREFIX: &str = "BOTGATE__";

/// Every field can be set from the environment: `BOTGATE__STORE__REDIS_URL`,
/// `BOTGATE__LLM__MAIN__API_KEY`, `BOTGATE__BOTS__SHOP__WECHAT__TOKEN`. Path segments are
/// lower-cased (table names in the file should be lower-case to be reachable). Values that
/// parse as a TOML integer, float or boolean take that type; anything else is a string.
pub(super) fn apply_env_overrides(
    root: &mut toml::Value,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    let mut overrides: Vec<&(String, String)> = env
        .iter()
        .filter(|(name, _)| name.starts_with(OVERRIDE_PREFIX) && name.len() > OVERRIDE_PREFIX.len())
        .collect();
    // Deterministic order, so that a parent set as a scalar and a child set later behave the same on every run.
    overrides.sort();
    for (name, raw) in overrides {
        let path: Vec<String> = name[OVERRIDE_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::invalid(
                name.clone(),
                "empty path segment in override name",
            ));
        }
        set_path(root, &path, scalar(raw))
            .map_err(|message| ConfigError::invalid(path.join("."), message))?;
    }
    Ok(())
}

fn scalar(raw: &str) -> toml::Value {
    if let Ok(value) = raw.parse::<i64>() {
        return toml::Value::Integer(value);
    }
    if let Ok(value) = raw.parse::<bool>() {
        return toml::Value::Boolean(value);
    }
    if raw.contains('.') && !raw.contains(':') {
        if let Ok(value) = raw.parse::<f64>() {
            return toml::Value::Float(value);
        }
    }
    toml::Value::String(raw.to_owned())
}

fn set_path(root: &mut toml::Value, path: &[String], value: toml::Value) -> Result<(), String> {
    let mut node = root;
    for segment in &path[..path.len() - 1] {
        let table = node
            .as_table_mut()
            .ok_or_else(|| format!("cannot set `{segment}`: its parent is not a table"))?;
        node = table
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::map::Map::new()));
    }
    let table = node
        .as_table_mut()
        .ok_or_else(|| "the parent of this field is not a table".to_owned())?;
    let last = &path[path.len() - 1];
    // A string override of a field the file holds as a number (or the reverse) keeps the
    // file's type when the text allows it, so `BOTGATE__STORE__MAX_TURNS=20` and `="20"` agree.
    let value = match (table.get(last), value) {
        (Some(toml::Value::String(_)), other) if !other.is_str() => {
            toml::Value::String(other.to_string().trim_matches('"').to_owned())
        }
        (_, value) => value,
    };
    table.insert(last.clone(), value);
    Ok(())
}

/// Replaces `${NAME}` in every string with the environment variable's value. A reference to an
/// unset variable is an error naming the field, so a missing secret fails at startup, not at
/// the first message. `$${` is a literal `${`.
pub(super) fn expand_variables(
    value: &mut toml::Value,
    env: &[(String, String)],
    path: &str,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(text) if text.contains('$') => {
            *text = expand(text, env).map_err(|message| ConfigError::invalid(path, message))?;
        }
        toml::Value::Table(table) => {
            for (key, child) in table.iter_mut() {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                expand_variables(child, env, &child_path)?;
            }
        }
        toml::Value::Array(items) => {
            for (index, child) in items.iter_mut().enumerate() {
                expand_variables(child, env, &format!("{path}[{index}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(text: &str, env: &[(String, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| "unterminated `${` (write `$${` for a literal)".to_owned())?;
            let name = &tail[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid variable name"));
            }
            let found = env
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value);
            match found {
                Some(value) => out.push_str(value),
                None => return Err(format!("environment variable {name} is not set")),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_known_variables_and_escapes() {
        let env = env(&[("KEY", "sk-1")]);
        assert_eq!(expand("Bearer ${KEY}!", &env).unwrap(), "Bearer sk-1!");
        assert_eq!(expand("$${KEY} costs $5", &env).unwrap(), "${KEY} costs $5");
    }

    #[test]
    fn unset_variable_is_an_error_naming_it() {
        let error = expand("${NOPE}", &[]).unwrap_err();
        assert!(error.contains("NOPE"), "{error}");
        assert!(expand("${bad-name}", &[]).is_err());
        assert!(expand("${OPEN", &[]).is_err());
    }

    #[test]
    fn overrides_create_nested_tables_with_typed_scalars() {
        let mut root: toml::Value = toml::from_str("[store]\nmax_turns = 3\n").unwrap();
        let env = env(&[
            ("BOTGATE__STORE__MAX_TURNS", "7"),
            ("BOTGATE__BOTS__SHOP__WELCOME", "hi"),
            ("OTHER", "x"),
        ]);
        apply_env_overrides(&mut root, &env).unwrap();
        assert_eq!(root["store"]["max_turns"].as_integer(), Some(7));
        assert_eq!(root["bots"]["shop"]["welcome"].as_str(), Some("hi"));
    }

    #[test]
    fn numeric_override_of_a_string_field_stays_a_string() {
        let mut root: toml::Value = toml::from_str("[llm.main]\napp_id = \"abc\"\n").unwrap();
        apply_env_overrides(&mut root, &env(&[("BOTGATE__LLM__MAIN__APP_ID", "12345")])).unwrap();
        assert_eq!(root["llm"]["main"]["app_id"].as_str(), Some("12345"));
    }
}
