//! mislint: a policy-as-code linter for firewall configs against Microsoft KB 294297.
#![forbid(unsafe_code)]

pub mod graph;
pub mod parse;
pub mod report;
pub mod source;
