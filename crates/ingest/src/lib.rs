//! HTTP ingest (in progress).
