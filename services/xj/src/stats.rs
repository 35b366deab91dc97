//! `xj stats`: the monthly statistics (《县行政执法协调监督工作方案》二) of a running hub, read
//! from its NATS, as a table or CSV.

use std::path::Path;

pub async fn stats(config: &Path, month: Option<String>, csv: bool) -> anyhow::Result<std::process::ExitCode> {
    let settings = xj_config::load_file(config)?;
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
    // A reader: it declares nothing, and says at once when there is no hub.
    let js = crate::audit::connect(&settings, None).await?;
    let store = js.get_key_value(xj_bus::subjects::KV_STATS).await.map_err(|e| {
        anyhow::anyhow!("no statistics bucket on this NATS ({e}): is it the hub's? (`[nats] url` or XJ_NATS__URL)")
    })?;
    let table = xj_bus::stats::month(&store, &month).await?;
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
