//! Placeholder until the nats backend lands.
