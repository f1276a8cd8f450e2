//! The optional configuration file of `wspubsub serve` (`--config FILE`, TOML).
//!
//! Its keys are the flags' names without dashes in front (`max-topics = 100`,
//! `pong-deadline = "2s"`). Each value becomes that flag's default, so the precedence is
//! flag > environment > file > built-in default, as clap resolves it.

use std::path::Path;

use anyhow::{Context, bail};
use clap::builder::OsStr;
use clap::{ArgMatches, Command};

/// Flags that make no sense inside the file itself (nor in `--print-config`'s output).
pub(crate) const NOT_IN_FILE: [&str; 4] = ["config", "print_config", "help", "version"];

/// Parses the command line, reading `--config` first when one is given.
pub(crate) fn matches(command: impl Fn() -> Command) -> anyhow::Result<ArgMatches> {
    let first = command().get_matches();
    let path = first
        .get_one::<std::path::PathBuf>("config")
        .or_else(|| first.subcommand_matches("serve")?.get_one("config"))
        .cloned();
    let Some(path) = path else { return Ok(first) };
    let defaults = read(&path)?;
    let mut with_file = command();
    for (id, value) in defaults {
        let known = with_file
            .get_arguments()
            .any(|arg| arg.get_id() == id.as_str());
        if !known || NOT_IN_FILE.contains(&id.as_str()) {
            bail!(
                "{}: unknown setting {:?}",
                path.display(),
                id.replace('_', "-")
            );
        }
        let value = OsStr::from(value);
        with_file = with_file.mut_arg(id.as_str(), |arg| arg.default_value(value.clone()));
        // A global flag (`log-format`) is defined once, on the top level, and reaches `serve`
        // only when the command is built: set the default where the flag is defined.
        with_file = with_file.mut_subcommand("serve", |serve| {
            let local = serve.get_arguments().any(|arg| arg.get_id() == id.as_str());
            if local {
                serve.mut_arg(id.as_str(), |arg| arg.default_value(value))
            } else {
                serve
            }
        });
    }
    Ok(with_file.get_matches())
}

/// The file's settings as (argument id, value as the command line would spell it).
fn read(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table = text.parse().map_err(|error: toml::de::Error| {
        // The error's own text spans several lines (it quotes the file); errors are one line.
        let line = error
            .span()
            .and_then(|span| text.get(..span.start))
            .map_or(1, |before| before.matches('\n').count() + 1);
        anyhow::anyhow!(
            "{} is not valid TOML: line {line}: {}",
            path.display(),
            error.message().trim()
        )
    })?;
    table
        .into_iter()
        .map(|(key, value)| Ok((key.replace('-', "_"), spell(&key, value)?)))
        .collect()
}

/// A TOML value as a command-line value; lists become comma-separated.
fn spell(key: &str, value: toml::Value) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(text) => text,
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::Float(number) => number.to_string(),
        toml::Value::Boolean(flag) => flag.to_string(),
        toml::Value::Array(items) => items
            .into_iter()
            .map(|item| spell(key, item))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(","),
        other => bail!("setting {key:?}: unsupported value {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_spelled_like_flags() {
        assert_eq!(spell("k", toml::Value::Integer(7)).expect("int"), "7");
        assert_eq!(
            spell("k", toml::Value::String("2s".into())).expect("string"),
            "2s"
        );
        let list = toml::Value::Array(vec!["https://a".into(), "*.b.org".into()]);
        assert_eq!(spell("k", list).expect("list"), "https://a,*.b.org");
        assert!(spell("k", toml::Value::Table(toml::Table::new())).is_err());
    }
}
