//! Placeholder until the amqp backend lands.
