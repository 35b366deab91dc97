//! `xj stats`: the monthly statistics (seed 001 §二) of a running hub, read
//! from its NATS, as a table or CSV.

use std::path::Path;

pub async fn stats(config: &Path, month: Option<String>, csv: bool) -> anyhow::Result<std::process::ExitCode> {
    let settings = xj_config::load_file(config)?;
    let Some(url) = settings.nats.url.clone() else {
        anyhow::bail!("`xj stats` reads a running hub: set [nats] url (or XJ_NATS__URL)");
    };
    let month = match month {
        Some(m) => {
            anyhow::ensure!(
                chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok(),
                "{m:?} is not a month (YYYY-MM)"
            );
            m
        }
        None => chrono::Local::now().format("%Y-%m").to_string(),
    };
    let bus = xj_bus::Bus::connect(&settings, &url).await?;
    let table = xj_bus::stats::month(&bus.stats, &month).await?;
    if csv {
        print!("{}", xj_bus::stats::csv(&month, &table));
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let fields = xj_bus::stats::FIELDS;
    println!("{month}");
    print!("{:<20}", "org");
    for f in fields {
        print!(" {:>8}", abbreviate(f));
    }
    println!();
    for (org, c) in &table {
        print!("{org:<20}");
        for f in fields {
            print!(" {:>8}", c.get(f).copied().unwrap_or(0));
        }
        println!();
    }
    if table.is_empty() {
        println!("(nothing counted this month)");
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn abbreviate(field: &str) -> String {
    field.split('_').map(|w| &w[..w.len().min(4)]).collect::<Vec<_>>().join("_")
}
