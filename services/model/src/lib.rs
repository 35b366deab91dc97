//! The hub's message model: the canonical envelope (docs/api.md), the JSON
//! Schemas under `schemas/` compiled once, and the checks no schema can
//! express (check characters of credit codes and ID numbers, region codes,
//! distinct officers, date order).
//!
//! Every service that touches a message depends on this crate and nothing
//! else of another service, so the schema files stay the single truth.

pub mod checks;
pub mod envelope;
pub mod ids;
pub mod problem;
pub mod schema;
pub mod text;

pub use envelope::{Classification, Envelope, MessageType, Recipients};
pub use ids::{IdNo, RegionCode, Uscc, mask_id_no, mask_id_numbers, mask_id_numbers_in};
pub use problem::Problem;
pub use schema::{Schemas, Validated};
pub use text::push_visible;
