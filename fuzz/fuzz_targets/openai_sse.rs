//! openai upstream SSE bodies, split into reads at the fuzzer's choice: chunks or errors,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_providers::fuzzing::{drain_split, openai_stream};

fuzz_target!(|data: &[u8]| drain_split(data, openai_stream));
