//! The envelope schema and the code name the same message types: a type
//! added to one and not the other is refused at the edge (or never read).

#[test]
fn the_envelope_schema_lists_exactly_the_message_types() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../schemas/envelope.schema.json")).expect("the envelope schema");
    let listed: Vec<&str> = schema["properties"]["type"]["enum"]
        .as_array()
        .expect("a type enum")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let code: Vec<&str> = xj_model::MessageType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(listed, code);
}
