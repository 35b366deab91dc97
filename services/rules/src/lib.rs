//! Jurisdiction by law, as data: the matter catalogue (事项清单) with its
//! competent kinds and devolved towns (赋权), territory (属地, 行政处罚法
//! art. 22), "first to open a case keeps it" (art. 25), criminal thresholds
//! as CEL conditions, and the party's penalty history. Pure: the router
//! fetches what the hub knows, this crate decides, and `xj route --explain`
//! gives the same answer as the running router.

mod crime;
mod decide;
mod history;
pub mod knowledge;
mod reload;
mod ruleset;

pub use crime::CrimeFinding;
pub use decide::{Consulted, Decision, Filing, Knowledge, Reroute, Target, check_recipients, decide};
pub use history::{Holder, PriorPenalty, party_key, reference_date};
pub use reload::RulesHandle;
pub use ruleset::{RuleError, RuleSet};
