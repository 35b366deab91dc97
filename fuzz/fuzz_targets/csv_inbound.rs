#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xj_fuzz::read(data, xj_fuzz::csv);
    xj_fuzz::translate("town-csv-v1", data);
});
