//! Bedrock ConverseStream bodies (AWS event-stream binary frames), split into reads at the
//! fuzzer's choice: chunks or errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_providers::fuzzing::{bedrock_stream, drain_split};

fuzz_target!(|data: &[u8]| drain_split(data, bedrock_stream));
