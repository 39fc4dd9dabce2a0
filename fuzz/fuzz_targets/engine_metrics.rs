//! An engine's `/metrics` body, as the gateway's poller reads it for each engine: a reading
//! or a missing gauge, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_engine::{read, EngineKind};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for kind in EngineKind::ALL {
        let _ = read(kind, &text);
    }
    for sample in switchyard_engine::exposition::samples(&text) {
        let _ = sample.label("model_name");
    }
});
