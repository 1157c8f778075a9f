//! `server --config FILE`: a TOML file whose keys are the long options' names.
//!
//! ```toml
//! dir = "/var/lib/fileserver"
//! max-connections = 4096
//! transport = "std"
//! ```
//!
//! Each value becomes the default of its option before the command line is parsed, so
//! an option given on the command line wins, every value goes through the same
//! checks as on the command line, `server --config FILE help serve` shows the values
//! in effect, and the rules of which options go with which command stay the command
//! line's. Only the options of the whole program and of serving can be set there:
//! an operator command's own arguments (a client, `--yes`) are never taken from a file.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Command;
use thiserror::Error;

/// A configuration file larger than this is refused (it would be a mistake: the whole
/// set of options fits in a few kilobytes).
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Why a configuration file was not used.
#[derive(Debug, Error)]
pub enum ConfigFileError {
    /// Not readable.
    #[error("--config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Over [`MAX_CONFIG_BYTES`].
    #[error("--config {0}: larger than {MAX_CONFIG_BYTES} bytes, not a configuration file")]
    TooLarge(String),
    /// Not TOML.
    #[error("--config {path}: not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, with the line.
        message: String,
    },
    /// A key that is no option of serving or of the whole program.
    #[error("--config {path}: {key:?} is not an option that a configuration file can set (valid: {valid})")]
    UnknownKey {
        /// The file.
        path: String,
        /// The key.
        key: String,
        /// The keys it could have been.
        valid: String,
    },
    /// A table, an array or a date where a single value belongs.
    #[error("--config {path}: {key:?} must be a string, a number or true/false")]
    NotAValue {
        /// The file.
        path: String,
        /// The key.
        key: String,
    },
}

/// The `--config` value in `args` (`--config FILE` or `--config=FILE`), if any: read
/// before clap parses, since the file changes what the parser is given.
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        if arg == "--" {
            return None;
        }
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(value));
        }
    }
    None
}

/// Reads `path` (at most [`MAX_CONFIG_BYTES`]).
pub fn read(path: &Path) -> Result<String, ConfigFileError> {
    let shown = path.display().to_string();
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text))
        .map_err(|source| ConfigFileError::Read {
            path: shown.clone(),
            source,
        })?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigFileError::TooLarge(shown));
    }
    Ok(text)
}

/// `command` with the file's values as the defaults of its options, on the program
/// and on `serve` (whose options are the same as the program's serving options).
pub fn apply(mut command: Command, path: &Path, text: &str) -> Result<Command, ConfigFileError> {
    let shown = path.display().to_string();
    let table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| ConfigFileError::Syntax {
                path: shown.clone(),
                message: e.to_string().trim().replace('\n', " "),
            })?;
    let settable: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|long| !["config", "help", "version"].contains(long))
        .map(str::to_string)
        .collect();
    for (key, value) in table {
        let Some(long) = settable.iter().find(|l| **l == key) else {
            return Err(ConfigFileError::UnknownKey {
                path: shown,
                key,
                valid: settable.join(", "),
            });
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => return Err(ConfigFileError::NotAValue { path: shown, key }),
        };
        let id = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .map(|a| a.get_id().clone());
        let Some(id) = id else { continue };
        let set = |a: clap::Arg| a.default_value(value.clone());
        command = command.mut_arg(id.clone(), set);
        let serve_has_it = command
            .find_subcommand("serve")
            .is_some_and(|s| s.get_arguments().any(|a| a.get_id() == &id));
        if serve_has_it {
            command = command.mut_subcommand("serve", |s| s.mut_arg(id, set));
        }
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn program() -> Command {
        let options = || {
            [
                Arg::new("port").long("port"),
                Arg::new("max_connections")
                    .long("max-connections")
                    .value_parser(clap::value_parser!(u32))
                    .default_value("1024"),
            ]
        };
        Command::new("server")
            .arg(Arg::new("config").long("config"))
            .arg(Arg::new("dir").long("dir").global(true).default_value("."))
            .args(options())
            .subcommand(Command::new("serve").args(options()))
            .subcommand(
                Command::new("remove-client")
                    .arg(Arg::new("yes").long("yes").action(ArgAction::SetTrue)),
            )
    }

    fn parse(text: &str, args: &[&str]) -> Result<clap::ArgMatches, String> {
        let cmd = apply(program(), Path::new("c.toml"), text).map_err(|e| e.to_string())?;
        cmd.try_get_matches_from(args).map_err(|e| e.to_string())
    }

    #[test]
    fn values_are_defaults_that_the_command_line_overrides() {
        let text = "max-connections = 4096\ndir = \"/srv\"\n";
        let m = parse(text, &["server"]).unwrap();
        assert_eq!(m.get_one::<u32>("max_connections"), Some(&4096));
        assert_eq!(m.get_one::<String>("dir").map(String::as_str), Some("/srv"));
        let m = parse(text, &["server", "--max-connections", "10"]).unwrap();
        assert_eq!(m.get_one::<u32>("max_connections"), Some(&10));
        let m = parse(text, &["server", "serve"]).unwrap();
        let (_, serve) = m.subcommand().unwrap();
        assert_eq!(serve.get_one::<u32>("max_connections"), Some(&4096));
    }

    #[test]
    fn values_get_the_command_lines_checks() {
        let err = parse("max-connections = \"many\"", &["server"]).unwrap_err();
        assert!(err.contains("many"), "{err}");
    }

    #[test]
    fn unknown_keys_subcommand_arguments_and_tables_are_refused() {
        let err = parse("max-conections = 1", &["server"]).unwrap_err();
        assert!(err.contains("\"max-conections\"") && err.contains("max-connections"));
        let err = parse("yes = true", &["server"]).unwrap_err();
        assert!(err.contains("\"yes\""), "{err}");
        let err = parse("config = \"x\"", &["server"]).unwrap_err();
        assert!(err.contains("\"config\""), "{err}");
        let err = parse("[port]\nx = 1", &["server"]).unwrap_err();
        assert!(err.contains("must be a string"), "{err}");
        let err = parse("port = ", &["server"]).unwrap_err();
        assert!(err.contains("not valid TOML"), "{err}");
    }

    #[test]
    fn the_path_is_found_in_either_spelling_and_not_after_a_double_dash() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_path(&args(&["server", "--config", "a.toml", "serve"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_path(&args(&["server", "list-files", "--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(config_path(&args(&["server", "--", "--config", "c"])), None);
        assert_eq!(config_path(&args(&["server", "--port", "1"])), None);
    }
}
