//! Embedded SQLite backend (placeholder until implemented).
use super::*;

/// SQLite journal.
pub struct Embedded;

impl Embedded {
    /// Opens or creates the database at `path`.
    pub fn open(_path: &std::path::Path, _durability: Durability) -> Result<Self, JournalError> {
        Err(JournalError::Unavailable("not implemented".into()))
    }
}

#[async_trait::async_trait]
impl Journal for Embedded {
    async fn append(&self, _request: Request) -> Result<Appended, JournalError> {
        Err(JournalError::Closed)
    }
    async fn lease(&self, _max: usize, _lease_for: Duration) -> Result<Vec<Leased>, JournalError> {
        Ok(vec![])
    }
    async fn settle(&self, seq: Seq, _s: Settlement) -> Result<(), JournalError> {
        Err(JournalError::NotFound(seq))
    }
    async fn stats(&self) -> Result<Stats, JournalError> {
        Ok(Stats::default())
    }
    async fn health(&self) -> Result<(), JournalError> {
        Err(JournalError::Closed)
    }
    async fn close(&self) -> Result<(), JournalError> {
        Ok(())
    }
}
