//! Working days (docs/clocks.md): weekends and public holidays are not working
//! days, official make-up days (调休) are. The table is data
//! (`schemas/calendar/cn-holidays.json`), replaceable by `[clock] holidays`.

use std::collections::HashSet;
use std::path::Path;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

const BUILT_IN: &str = include_str!("../../../schemas/calendar/cn-holidays.json");

#[derive(Deserialize)]
struct Table {
    years: std::collections::BTreeMap<String, Year>,
}

#[derive(Deserialize)]
struct Year {
    holidays: Vec<NaiveDate>,
    workdays: Vec<NaiveDate>,
    #[serde(default)]
    provisional: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Calendar {
    holidays: HashSet<NaiveDate>,
    workdays: HashSet<NaiveDate>,
    pub provisional_years: Vec<i32>,
}

impl Calendar {
    pub fn built_in() -> Self {
        Self::parse(BUILT_IN).unwrap_or_default()
    }

    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        match path {
            Some(p) => Self::parse(&std::fs::read_to_string(p)?),
            None => Self::parse(BUILT_IN),
        }
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let t: Table = serde_json::from_str(text)?;
        let mut c = Self::default();
        for (year, y) in t.years {
            c.holidays.extend(y.holidays);
            c.workdays.extend(y.workdays);
            if y.provisional {
                c.provisional_years.push(year.parse().unwrap_or_default());
            }
        }
        Ok(c)
    }

    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.workdays.contains(&d) {
            return true;
        }
        !self.holidays.contains(&d) && !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The `n`-th working day after `from` (the start day itself is not
    /// counted: 期间开始之日不计算在内).
    pub fn add_working_days(&self, from: NaiveDate, n: i64) -> NaiveDate {
        let mut d = from;
        let mut left = n;
        while left > 0 {
            d = d.succ_opt().unwrap_or(d);
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        d
    }

    /// The last working day strictly before `d`.
    pub fn previous_working_day(&self, d: NaiveDate) -> NaiveDate {
        let mut p = d.pred_opt().unwrap_or(d);
        while !self.is_working_day(p) {
            p = p.pred_opt().unwrap_or(p);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn holidays_and_make_up_days() {
        let c = Calendar::built_in();
        assert!(!c.is_working_day(d("2026-10-01")));
        assert!(c.is_working_day(d("2026-10-10")), "Saturday make-up day");
        assert!(c.is_working_day(d("2026-09-20")), "Sunday make-up day");
        assert!(!c.is_working_day(d("2026-02-16")), "Spring Festival");
        assert!(c.is_working_day(d("2026-02-14")), "Saturday before Spring Festival is worked");
        assert!(c.is_working_day(d("2025-01-26")));
        assert!(!c.is_working_day(d("2025-11-22")), "an ordinary Saturday");
        assert_eq!(c.provisional_years, vec![2027]);
    }

    #[test]
    fn five_working_days_from_the_thursday_before_mid_autumn_and_national_day() {
        let c = Calendar::built_in();
        // 24 Sep 2026 is a Thursday; 25–27 Sep and 1–7 Oct are holidays.
        assert_eq!(c.add_working_days(d("2026-09-24"), 5), d("2026-10-09"));
        // 10 Oct (Saturday) is a make-up working day: the sixth.
        assert_eq!(c.add_working_days(d("2026-09-24"), 6), d("2026-10-10"));
        assert_eq!(c.add_working_days(d("2026-11-20"), 2), d("2026-11-24"));
        assert_eq!(c.previous_working_day(d("2026-10-08")), d("2026-09-30"));
    }
}
