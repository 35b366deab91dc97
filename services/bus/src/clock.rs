//! The hub's time. In `system` mode it is the machine's clock; in `manual`
//! mode (docs/clocks.md, for tests and drills) it is a value in the `xj_clock`
//! bucket that only `POST /v1/admin/clock/advance` moves, so every instance
//! that keeps statutory time (tracker, gateway's clock and statistics
//! endpoints, console) sees the same time. Wire timestamps (acceptance,
//! routing, attempts, ledger) stay on the machine's clock; docs/clocks.md.

use std::sync::{Arc, RwLock};

use async_nats::jetstream::kv::{self, CreateErrorKind};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use tokio::sync::watch;
use xj_config::ClockMode;

use crate::Shutdown;

const KEY: &str = "now";

#[derive(Clone)]
pub struct HubClock {
    mode: ClockMode,
    kv: Arc<kv::Store>,
    cached: Arc<RwLock<DateTime<Utc>>>,
    changes: watch::Sender<DateTime<Utc>>,
}

impl HubClock {
    /// In manual mode, starts at the machine's time the first time any
    /// service starts, and follows the bucket from then on.
    pub async fn start(
        mode: ClockMode,
        start_at: Option<&str>,
        kv: kv::Store,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        let now = match start_at {
            Some(s) => DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc),
            None => Utc::now(),
        };
        let (changes, _) = watch::channel(now);
        let clock = Self { mode, kv: Arc::new(kv.clone()), cached: Arc::new(RwLock::new(now)), changes };
        if mode == ClockMode::Manual {
            match kv.create(KEY, now.to_rfc3339().into()).await {
                Ok(_) => {}
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(v) = kv.get(KEY).await? {
                clock.set(parse(&v)?);
            }
            let mut watch = kv.watch(KEY).await?;
            let c = clock.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        next = watch.next() => match next {
                            Some(Ok(entry)) => {
                                if let Ok(t) = parse(&entry.value) {
                                    c.set(t);
                                }
                            }
                            _ => return,
                        }
                    }
                }
            });
        }
        Ok(clock)
    }

    fn set(&self, t: DateTime<Utc>) {
        *self.cached.write().unwrap_or_else(|p| p.into_inner()) = t;
        let _ = self.changes.send(t);
    }

    pub fn mode(&self) -> ClockMode {
        self.mode
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self.mode {
            ClockMode::System => Utc::now(),
            ClockMode::Manual => *self.cached.read().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Notified whenever manual time moves.
    pub fn changes(&self) -> watch::Receiver<DateTime<Utc>> {
        self.changes.subscribe()
    }

    /// Moves manual time forward (compare-and-set, so concurrent advances add up).
    pub async fn advance(&self, by: Duration) -> anyhow::Result<DateTime<Utc>> {
        anyhow::ensure!(self.mode == ClockMode::Manual, "the clock is not in manual mode");
        for _ in 0..20 {
            let entry = self.kv.entry(KEY).await?.ok_or_else(|| anyhow::anyhow!("manual clock not initialised"))?;
            let next = parse(&entry.value)? + by;
            if self.kv.update(KEY, next.to_rfc3339().into(), entry.revision).await.is_ok() {
                self.set(next);
                return Ok(next);
            }
        }
        anyhow::bail!("the clock kept moving under us")
    }
}

fn parse(v: &[u8]) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(std::str::from_utf8(v)?)?.with_timezone(&Utc))
}

/// ISO 8601 duration (`P3D`, `PT24H`, `P1DT2H30M`, `P2W`); years and months
/// are refused because their length depends on the date.
pub fn parse_iso_duration(s: &str) -> Result<Duration, String> {
    let rest = s.strip_prefix('P').ok_or_else(|| format!("{s:?} is not an ISO 8601 duration (e.g. P3D, PT24H)"))?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = Duration::zero();
    let mut any = false;
    for (part, in_time) in [(date, false), (time, true)] {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i64 = num.parse().map_err(|_| format!("{s:?}: a number must precede {c}"))?;
            num.clear();
            any = true;
            // chrono's constructors panic beyond their range, and `+`
            // on durations overflows: a number from outside is checked.
            let part = match (c, in_time) {
                ('W', false) => Duration::try_weeks(n),
                ('D', false) => Duration::try_days(n),
                ('H', true) => Duration::try_hours(n),
                ('M', true) => Duration::try_minutes(n),
                ('S', true) => Duration::try_seconds(n),
                ('Y' | 'M', false) => return Err(format!("{s:?}: years and months are not fixed lengths; use days")),
                _ => return Err(format!("{s:?}: unexpected {c}")),
            };
            total = part
                .and_then(|p| total.checked_add(&p))
                .ok_or_else(|| format!("{s:?} is longer than the hub can count"))?;
        }
        if !num.is_empty() {
            return Err(format!("{s:?}: {num} has no unit"));
        }
    }
    if !any {
        return Err(format!("{s:?} is empty"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_refused_not_a_panic() {
        for s in [
            "P9999999999999999D",
            "P99999999999999999999D",
            "PT9223372036854775807S",
            "P1000000000000W",
            "P9999999999999D9999999999999D",
        ] {
            assert!(parse_iso_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_iso_duration("P3D").unwrap(), Duration::days(3));
        assert_eq!(parse_iso_duration("PT24H").unwrap(), Duration::hours(24));
        assert_eq!(parse_iso_duration("P1DT2H30M").unwrap(), Duration::minutes(26 * 60 + 30));
        assert_eq!(parse_iso_duration("P2W").unwrap(), Duration::days(14));
        assert!(parse_iso_duration("P1M").is_err());
        assert!(parse_iso_duration("3D").is_err());
        assert!(parse_iso_duration("P").is_err());
    }
}
