#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xj_fuzz::read(data, xj_fuzz::xml);
    xj_fuzz::translate("eco-xml-v1", data);
    xj_fuzz::translate("police-xml-v1", data);
});
