#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xj_fuzz::read(data, xj_fuzz::json);
    xj_fuzz::translate("samr-json-v1", data);
    xj_fuzz::translate("court-json-v1", data);
});
