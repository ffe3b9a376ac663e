//! Fuzz target: arbitrary bytes through the iptables parser and both renderers.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use mislint::graph::Dialect;

fuzz_target!(|data: &[u8]| {
    common::fuzz_parser(data, Dialect::Iptables, "fuzz.rules");
});
