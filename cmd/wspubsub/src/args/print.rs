//! `wspubsub serve --print-config`: the effective settings in the config file's format.
//!
//! It walks clap's own definitions of `serve`'s flags and the values clap resolved for them
//! (flag, environment, file or default, as written), so a new flag shows up without a line
//! here. Nothing is read or checked: key and certificate files need not exist.

use clap::{ArgMatches, Command};

use super::file::NOT_IN_FILE;

/// Every flag of `command` (the built `serve` command) with its value in `matches`, one TOML
/// line each; secrets are redacted, and a flag without a value is a comment.
pub(crate) fn render(command: &Command, matches: &ArgMatches) -> String {
    let mut text = String::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(key) = arg.get_long() else { continue };
        if NOT_IN_FILE.contains(&id) {
            continue;
        }
        let values: Vec<String> = matches
            .try_get_raw(id)
            .ok()
            .flatten()
            .map(|raw| {
                raw.map(|value| value.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let line = if values.is_empty() && arg.get_value_delimiter().is_none() {
            format!("# {key} is not set")
        } else if arg.is_hide_env_values_set() {
            format!("{key} = \"<redacted>\"")
        } else if arg.get_value_delimiter().is_some() {
            let list = values.iter().map(|value| typed(value)).collect();
            format!("{key} = {}", toml::Value::Array(list))
        } else {
            format!("{key} = {}", typed(&values.join(",")))
        };
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// A value as TOML: a number or a boolean when it reads as one, else a string.
fn typed(value: &str) -> toml::Value {
    if let Ok(number) = value.parse::<i64>() {
        toml::Value::Integer(number)
    } else if let Ok(flag) = value.parse::<bool>() {
        toml::Value::Boolean(flag)
    } else {
        toml::Value::String(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::args::Wrapper;

    fn print(args: &[&str]) -> String {
        let command = Wrapper::command();
        let matches = command
            .clone()
            .try_get_matches_from([&["wspubsub"], args].concat())
            .expect("parse");
        Wrapper::from_arg_matches(&matches).expect("typed");
        render(&command, &matches)
    }

    #[test]
    fn every_flag_has_a_line_that_the_file_reads_back() {
        let printed = print(&["--jwt-secret", "hush", "--trusted-proxies", "10.0.0.0/8"]);
        let table: toml::Table = printed.parse().expect("valid TOML");
        for arg in Wrapper::command().get_arguments() {
            let Some(key) = arg.get_long() else { continue };
            if NOT_IN_FILE.contains(&arg.get_id().as_str()) {
                continue;
            }
            assert!(
                table.contains_key(key) || printed.contains(&format!("# {key} is not set")),
                "{key} missing from:\n{printed}"
            );
        }
        assert_eq!(table["jwt-secret"].as_str(), Some("<redacted>"));
        assert!(!printed.contains("hush"), "{printed}");
        assert_eq!(table["max-topics"].as_integer(), Some(0));
        assert_eq!(table["pong-deadline"].as_str(), Some("5s"));
        assert_eq!(
            table["trusted-proxies"].as_array().map(Vec::len),
            Some(1),
            "{printed}"
        );
        assert_eq!(table["allowed-origins"].as_array().map(Vec::len), Some(0));
        assert!(printed.contains("# tls-cert is not set"), "{printed}");
        assert!(!printed.contains("print-config"), "{printed}");
    }
}
