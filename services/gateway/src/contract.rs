//! `GET /v1/openapi.json` and `GET /v1/asyncapi.json`: the machine-readable
//! contract (docs/api.md, "The contract as documents"). The documents are
//! files in `schemas/`, compiled in so the binary serves the contract it was
//! built with; tests/e2e checks them against the route table, the message
//! schemas, the stock validators and the hub's real answers.

use axum::response::{IntoResponse, Response};

/// The HTTP API, OpenAPI 3.1.
pub const OPENAPI: &str = include_str!("../../../schemas/openapi.json");
/// What an organisation sees on NATS, AsyncAPI 3.0.
pub const ASYNCAPI: &str = include_str!("../../../schemas/asyncapi.json");

pub async fn openapi() -> Response {
    json(OPENAPI)
}

pub async fn asyncapi() -> Response {
    json(ASYNCAPI)
}

fn json(text: &'static str) -> Response {
    ([("content-type", "application/json")], text).into_response()
}
