//! Loading: included files, then the main file, then `XJ_` environment
//! variables (`XJ_NATS__URL`, `XJ_HTTP__LISTEN`, …), then validation.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};

use crate::Settings;

/// One problem with the configuration, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

/// `file:line: key: message`, leaving out what is not known (a file that
/// cannot be read has no line and no key).
impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.file.is_empty() {
            match self.line {
                Some(line) => write!(f, "{}:{line}: ", self.file)?,
                None => write!(f, "{}: ", self.file)?,
            }
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {message}")]
    Read { file: String, message: String },
    #[error("{0}")]
    Parse(String),
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigProblem>),
}

impl ConfigError {
    pub fn problems(&self) -> Vec<ConfigProblem> {
        match self {
            Self::Invalid(p) => p.clone(),
            other => {
                vec![ConfigProblem { file: String::new(), line: None, key: String::new(), message: other.to_string() }]
            }
        }
    }
}

/// Loads and validates a configuration file.
pub fn load_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Read { file: path.display().to_string(), message: e.to_string() })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut s = load_inner(&text, &path.display().to_string(), &base)?;
    s.files.insert(0, path.to_path_buf());
    Ok(s)
}

/// Loads and validates configuration text (the embedded sandbox default,
/// tests). Relative paths resolve against the current directory.
pub fn load_str(text: &str, name: &str) -> Result<Settings, ConfigError> {
    load_inner(text, name, Path::new("."))
}

fn load_inner(text: &str, name: &str, base: &Path) -> Result<Settings, ConfigError> {
    let raw: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse(format!("{name}: {e}")))?;
    let includes: Vec<PathBuf> = raw
        .get("include")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).map(|s| base.join(s)).collect())
        .unwrap_or_default();
    let mut files = Vec::new();
    let mut builder = Config::builder();
    for inc in &includes {
        let t = std::fs::read_to_string(inc)
            .map_err(|e| ConfigError::Read { file: inc.display().to_string(), message: e.to_string() })?;
        builder = builder.add_source(File::from_str(&t, FileFormat::Toml));
        files.push((inc.display().to_string(), t));
    }
    builder = builder.add_source(File::from_str(text, FileFormat::Toml)).add_source(
        Environment::with_prefix("XJ")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .source(Some(overrides())),
    );
    files.push((name.to_string(), text.to_string()));
    let cfg = builder.build().map_err(|e| ConfigError::Parse(format!("{name}: {e}")))?;
    let mut settings: Settings = cfg.try_deserialize().map_err(|e| {
        let msg = e.to_string();
        ConfigError::Invalid(vec![ConfigProblem {
            file: name.to_string(),
            line: None,
            key: key_of_message(&msg),
            message: msg,
        }])
    })?;
    settings.source = name.to_string();
    settings.files = includes.clone();
    // Relative paths in a file are relative to that file.
    if !settings.data.dir.is_absolute() && base != Path::new(".") {
        settings.data.dir = base.join(&settings.data.dir);
    }
    let problems = crate::validate::validate(&mut settings, base);
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError::Invalid(problems.into_iter().map(|p| locate(p, &files)).collect()))
    }
}

/// The `XJ_` variables that are configuration overrides: `XJ_<SECTION>__<KEY>`.
/// Others (`XJ_CACHE_DIR`, `XJ_NATS_SERVER`, a test's own `XJ_…`) are not
/// settings and must not make the configuration fail as unknown keys.
fn overrides() -> config::Map<String, String> {
    std::env::vars().filter(|(k, _)| k.starts_with("XJ_") && k.contains("__")).collect()
}

fn key_of_message(msg: &str) -> String {
    // config's messages end with "for key `a.b`" when it knows the key.
    msg.split("for key `").nth(1).and_then(|s| s.split('`').next()).unwrap_or("").to_string()
}

/// A problem found by validation, before it is located in a file.
pub(crate) struct Unlocated {
    pub key: String,
    pub message: String,
}

/// Finds the file and line of a key like `org[2].region` or `matter[0]`:
/// the n-th `[[org]]` header, then the key's line within that table.
fn locate(p: Unlocated, files: &[(String, String)]) -> ConfigProblem {
    let (table, index, field) = split_key(&p.key);
    let mut seen = 0usize;
    for (file, text) in files {
        let lines: Vec<&str> = text.lines().collect();
        let header = format!("[[{table}]]");
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i].trim();
            let is_table = index.is_some() && l == header;
            let is_plain = index.is_none() && l == format!("[{table}]");
            if is_table || is_plain {
                if index.is_none() || Some(seen) == index {
                    let line = field.as_deref().and_then(|f| find_field(&lines, i, &table, f)).unwrap_or(i);
                    return ConfigProblem { file: file.clone(), line: Some(line + 1), key: p.key, message: p.message };
                }
                seen += 1;
            }
            i += 1;
        }
    }
    let file = files.last().map(|f| f.0.clone()).unwrap_or_default();
    ConfigProblem { file, line: None, key: p.key, message: p.message }
}

/// The line of `field` (`region`, or `crime.when` in a `[table.crime]`
/// sub-table) in the table whose header is at `header`.
fn find_field(lines: &[&str], header: usize, table: &str, field: &str) -> Option<usize> {
    let within = |from: usize| {
        lines[from + 1..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with(&format!("[[{table}]]")))
            .enumerate()
            .map(move |(k, l)| (from + 1 + k, l.trim_start()))
    };
    let key_at = |from: usize, key: &str| {
        within(from)
            .take_while(|(_, t)| !t.starts_with('['))
            .find(|(_, t)| t.starts_with(key) && t[key.len()..].trim_start().starts_with('='))
            .map(|(n, _)| n)
    };
    match field.split_once('.') {
        Some((sub, key)) => {
            let sub_header = within(header).find(|(_, t)| *t == format!("[{table}.{sub}]"))?.0;
            key_at(sub_header, key).or(Some(sub_header))
        }
        None => key_at(header, field),
    }
}

fn split_key(key: &str) -> (String, Option<usize>, Option<String>) {
    let (head, field) = match key.split_once('.') {
        Some((h, f)) => (h, Some(f.split('[').next().unwrap_or(f).to_string())),
        None => (key, None),
    };
    match head.split_once('[') {
        Some((t, rest)) => (t.to_string(), rest.trim_end_matches(']').parse().ok(), field),
        None => (head.to_string(), None, field),
    }
}
