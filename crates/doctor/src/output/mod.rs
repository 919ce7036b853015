//! Renderers: text for humans, JSON, SARIF 2.1.0.

pub mod json;
pub mod sarif;
pub mod text;
