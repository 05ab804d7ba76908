//! A challenge and its events, written together: a crash between two separate writes left a
//! challenge without its `authentication_challenge.created` event (the audit trail missed a
//! challenge that could still be verified).

use tessera_core::Error;

use crate::db::call;
use crate::queries::{challenge_args, event_args, CHALLENGE_INSERT, EVENT_INSERT};
use crate::rows::{ChallengeRow, EventRow};
use crate::sql::{Conn, Tx};
use crate::Store;

impl Store {
    /// Inserts a challenge and `events` in one transaction: all of them or none.
    pub async fn insert_challenge_with_events(
        &self,
        ch: &ChallengeRow,
        events: &[EventRow],
    ) -> Result<(), Error> {
        call!(self, transaction, |c| insert_challenge_with_events(
            c, ch, events
        ))
    }
}

async fn insert_challenge_with_events<C: Conn>(
    c: &mut C,
    ch: &ChallengeRow,
    events: &[EventRow],
) -> Result<Tx<()>, Error> {
    c.exec(CHALLENGE_INSERT, &challenge_args(ch)).await?;
    for e in events {
        c.exec(EVENT_INSERT, &event_args(e)).await?;
    }
    Ok(Tx::Commit(()))
}
