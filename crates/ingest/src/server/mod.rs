//! Our own HTTP/1.1 server loop around hyper: connection cap, independent idle and header
//! timers, drain.

pub(crate) mod accept;
pub mod conn;
pub mod drain;
