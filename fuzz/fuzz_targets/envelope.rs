#![no_main]

//! The canonical envelope as the gateway reads it: bytes to JSON, the
//! schemas and checks, the typed envelope; and the identifiers and masking
//! applied to text from outside.

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use xj_model::{Envelope, IdNo, RegionCode, Uscc, mask_id_numbers, mask_id_numbers_in};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = (Uscc::parse(text), IdNo::parse(text), RegionCode::parse(text));
        let masked = mask_id_numbers(text);
        assert_eq!(masked.chars().count(), text.chars().count());
    }
    let Ok(mut doc) = serde_json::from_slice::<Value>(data) else { return };
    match xj_fuzz::SCHEMAS.validate(&doc) {
        Ok(v) => {
            // What was accepted reads back the same.
            let again = serde_json::to_value(&v.envelope).expect("an envelope serialises");
            let back = xj_fuzz::SCHEMAS.validate(&again).expect("an accepted envelope validates again").envelope;
            assert_eq!(back, v.envelope);
        }
        Err(problems) => {
            assert!(!problems.is_empty());
            for p in &problems {
                assert!(p.pointer.is_empty() || p.pointer.starts_with('/'), "{p}");
                assert!(!p.message.is_empty(), "{p}");
            }
            // The gateway tries the typed envelope of a refused document too.
            let _ = serde_json::from_value::<Envelope>(doc.clone());
        }
    }
    mask_id_numbers_in(&mut doc);
});
