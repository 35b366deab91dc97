//! The tracker: one record per case in the `xj_cases` bucket — parties, every
//! message, the case's state and its statutory clocks — fed by the routing
//! and delivery events of `XJ_EVENTS`. A firing loop sends reminders before
//! a clock ends and `overdue` alerts when it ends unanswered, once, whatever
//! restarts in between (clocks live in the bucket, not in memory).
//! `GET /v1/cases/{case}` and the monthly statistics read what it keeps.

pub mod calendar;
pub mod clocks;
pub mod machine;
mod service;
pub mod summary;

pub use service::run;
