//! The page and its script and style, embedded in the binary.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const COMMON: &str = include_str!("../assets/common.js");
const WORKSPACE: &str = include_str!("../assets/workspace.html");
const WORKSPACE_SCRIPT: &str = include_str!("../assets/workspace.js");
const STYLE: &str = include_str!("../assets/app.css");

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> Response {
    page("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn common() -> Response {
    page("text/javascript; charset=utf-8", COMMON)
}

/// The organisations' workspace: a page of its own that speaks to the
/// gateway's API (`/v1/*`) with the organisation's token, so it shows
/// exactly what that token may read (docs/workspace.md).
pub async fn workspace() -> Response {
    page("text/html; charset=utf-8", WORKSPACE)
}

pub async fn workspace_script() -> Response {
    page("text/javascript; charset=utf-8", WORKSPACE_SCRIPT)
}

pub async fn style() -> Response {
    page("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::COMMON as SCRIPT;

    /// The names between `const <table> = {` and the `};` that ends it.
    fn table(name: &str) -> String {
        let start = SCRIPT.find(&format!("const {name} = {{")).unwrap_or_else(|| panic!("no {name} in app.js"));
        let rest = &SCRIPT[start..];
        rest[..rest.find("};").unwrap_or(rest.len())].to_string()
    }

    /// A message type, step or clock without a label shows as its raw name
    /// on the operators' and organisations' pages; a new one must be
    /// labelled in both languages.
    #[test]
    fn every_message_type_and_step_has_a_label() {
        let types = table("TYPES");
        for t in xj_model::MessageType::ALL {
            assert!(types.contains(&format!("{}: [", t.as_str())), "no label for the message type {}", t.as_str());
        }
        let steps = table("STEPS");
        for s in xj_bus::events::Step::NAMES {
            assert!(steps.contains(&format!("{s}: [")), "no label for the step {s}");
        }
        let clocks = table("CLOCKS");
        for c in xj_tracker::clocks::ClockName::ALL {
            assert!(clocks.contains(&format!("{}: [", c.as_str())), "no label for the clock {}", c.as_str());
        }
    }
}
