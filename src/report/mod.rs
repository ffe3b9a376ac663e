//! Findings and their renderers: the last stage of the pipeline.

pub mod finding;
