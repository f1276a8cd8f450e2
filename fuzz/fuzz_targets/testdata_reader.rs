//! The test-data reader on arbitrary bytes: every input is a data set or a typed error, never
//! a panic, and a data set read back is written out to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wspubsub_testdata::DataSet;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(set) = DataSet::read_from(bytes) {
        let mut written = Vec::with_capacity(bytes.len());
        if set.write_to(&mut written).is_ok() {
            assert_eq!(written, bytes, "a file that reads must write back byte for byte");
        }
    }
});
