//! `xj translate --format NAME [--to canonical|native] FILE`: try a mapping
//! offline. To canonical, every message of the document is printed and
//! checked against the schemas, each problem placed in the native document;
//! to native, a canonical message is written in the format, or the reasons
//! it cannot be are printed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use xj_mapping::report::{Detail, inbound_details};
use xj_mapping::{Formats, InboundError, inbound, outbound};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    Canonical,
    Native,
}

pub struct Args {
    pub format: String,
    pub to: Direction,
    pub config: Option<PathBuf>,
    pub formats_dir: Option<PathBuf>,
    pub org: String,
    pub file: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let formats = match (&a.config, &a.formats_dir) {
        (Some(c), _) => xj_config::load_file(c)?.mappings.as_ref().clone(),
        (None, dir) => Formats::load(dir.as_deref())?,
    };
    let format = formats.get(&a.format).map_err(|e| anyhow::anyhow!("{e}; known: {}", formats.names().join(", ")))?;
    let raw = std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let file = a.file.display().to_string();
    match a.to {
        Direction::Native => to_native(format, &raw, &file),
        Direction::Canonical => to_canonical(format, &raw, &file, &a.org),
    }
}

fn to_native(format: &xj_mapping::Format, raw: &[u8], file: &str) -> anyhow::Result<ExitCode> {
    match outbound::translate(format, raw) {
        Ok(native) => {
            print!("{}", String::from_utf8_lossy(&native));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{file}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn to_canonical(format: &xj_mapping::Format, raw: &[u8], file: &str, org: &str) -> anyhow::Result<ExitCode> {
    let schemas = xj_model::Schemas::load()?;
    let docs = match inbound::parse(format, raw) {
        Ok(d) => d,
        Err(e) => return Ok(report(file, &inbound_details(&e))),
    };
    let mut ok = true;
    for doc in &docs {
        match inbound::document(format, doc, org) {
            Ok(t) => {
                println!("{}", serde_json::to_string_pretty(&t.message)?);
                if let Err(problems) = schemas.validate(&t.message) {
                    let details: Vec<Detail> = problems.iter().map(|p| Detail::canonical(p, &t.provenance)).collect();
                    report(file, &details);
                    ok = false;
                }
            }
            Err(problems) => {
                let e = InboundError::Mapping { format: format.name.clone(), problems };
                report(file, &inbound_details(&e));
                ok = false;
            }
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn report(file: &str, details: &[Detail]) -> ExitCode {
    for d in details {
        eprintln!("{file}: {d}");
    }
    ExitCode::FAILURE
}
