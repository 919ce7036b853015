//! wagate-dispatch (in progress).
