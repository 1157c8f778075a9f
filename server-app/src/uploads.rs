//! Uploads in progress, each owned by the connection that is sending it.
//!
//! A 900, 901 or 902 affects exactly the upload whose 1603 its connection received. A
//! client with a connection per request (protocol variant 7) leaves its upload between
//! connections: suspended between packets, or finished and awaiting its verdict. A later
//! connection of the same client takes it over only when it is the client's one such
//! upload and no other connection of the client is sending one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protocol_core::{ClientId, SuspendedUpload};

/// Identifies one upload in progress.
pub type UploadId = u64;
/// Identifies one connection.
pub type ConnId = u64;

enum State {
    /// Packets are arriving on the owning connection.
    Receiving,
    /// Between packets, no connection holds it (a connection per request).
    Suspended(SuspendedUpload),
    /// 1603 sent; waiting for 900/901/902.
    Finished { size: u64, checksum: u32 },
}

struct Slot {
    client: ClientId,
    file_name: String,
    key: String,
    owner: Option<ConnId>,
    state: State,
    /// When it last lost its connection (for abandoned uploads).
    since: Instant,
}

/// An upload whose verdict came: what the commit needs.
#[derive(Debug)]
pub struct Verdictable {
    /// Name as the client sent it.
    pub file_name: String,
    /// The contents key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Checksum sent in 1603.
    pub checksum: u32,
}

/// An upload removed because no connection came back for it.
#[derive(Debug)]
pub struct Abandoned {
    /// Owner.
    pub client: ClientId,
    /// The contents key to delete.
    pub key: String,
    /// How long it had been without a connection.
    pub idle: Duration,
}

/// Every upload in progress of this server.
#[derive(Default)]
pub struct Uploads {
    slots: Mutex<HashMap<UploadId, Slot>>,
    next: Mutex<UploadId>,
}

impl Uploads {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<UploadId, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a new upload sent by `conn`.
    pub fn start(
        &self,
        conn: ConnId,
        client: ClientId,
        file_name: String,
        key: String,
    ) -> UploadId {
        let id = {
            let mut n = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        self.slots().insert(
            id,
            Slot {
                client,
                file_name,
                key,
                owner: Some(conn),
                state: State::Receiving,
                since: Instant::now(),
            },
        );
        id
    }

    /// Removes the suspended uploads of `client` for `file_name` that no connection
    /// holds: the client started that file again from its first packet. Their keys,
    /// to delete.
    pub fn supersede(&self, client: &ClientId, file_name: &str) -> Vec<String> {
        let mut slots = self.slots();
        let mut gone = Vec::new();
        slots.retain(|_, s| {
            let stale = s.client == *client
                && s.file_name == file_name
                && s.owner.is_none()
                && matches!(s.state, State::Suspended(_));
            if stale {
                gone.push(s.key.clone());
            }
            !stale
        });
        gone
    }

    /// The last packet arrived and the bytes are durable: 1603 goes out.
    pub fn finish(&self, id: UploadId, size: u64, checksum: u32) -> bool {
        match self.slots().get_mut(&id) {
            Some(s) => {
                s.state = State::Finished { size, checksum };
                true
            }
            None => false,
        }
    }

    /// The connection left between packets: another may continue.
    pub fn suspend(&self, id: UploadId, upload: SuspendedUpload) {
        if let Some(s) = self.slots().get_mut(&id) {
            s.state = State::Suspended(upload);
            s.owner = None;
            s.since = Instant::now();
        }
    }

    /// A connection of `client` continues a suspended upload: the client's only one,
    /// and only when no other connection of the client is sending one.
    pub fn resume(
        &self,
        conn: ConnId,
        client: &ClientId,
    ) -> Option<(UploadId, String, SuspendedUpload)> {
        let mut slots = self.slots();
        let sending_elsewhere = slots.values().any(|s| {
            s.client == *client && matches!(s.state, State::Receiving) && s.owner != Some(conn)
        });
        let mut suspended = slots
            .iter()
            .filter(|(_, s)| s.client == *client && matches!(s.state, State::Suspended(_)))
            .map(|(id, _)| *id);
        let (Some(id), None) = (suspended.next(), suspended.next()) else {
            return None;
        };
        if sending_elsewhere {
            return None;
        }
        let slot = slots.get_mut(&id)?;
        let State::Suspended(up) = std::mem::replace(&mut slot.state, State::Receiving) else {
            return None;
        };
        slot.owner = Some(conn);
        Some((id, slot.key.clone(), up))
    }

    /// The upload a verdict of `client` on `conn` is about: the connection's own
    /// finished upload; else the client's one finished upload that no connection
    /// holds; else, when the verdict is the first request of its connection (a
    /// connection per request, whose previous connection may not have closed here
    /// yet), the client's one finished upload. Removed from the table.
    pub fn take_for_verdict(
        &self,
        conn: ConnId,
        own: Option<UploadId>,
        client: &ClientId,
        fresh: bool,
    ) -> Option<Verdictable> {
        let mut slots = self.slots();
        let id = pick_finished(&slots, conn, own, client, fresh)?;
        let slot = slots.remove(&id)?;
        let State::Finished { size, checksum } = slot.state else {
            return None;
        };
        Some(Verdictable {
            file_name: slot.file_name,
            key: slot.key,
            size,
            checksum,
        })
    }

    /// Removes an upload; its contents key, to delete.
    pub fn remove(&self, id: UploadId) -> Option<String> {
        self.slots().remove(&id).map(|s| s.key)
    }

    /// Removes the finished upload a 901 of `client` on `conn` is about (found as
    /// [`take_for_verdict`](Self::take_for_verdict) finds it); its key, to delete.
    pub fn remove_for_retry(
        &self,
        conn: ConnId,
        own: Option<UploadId>,
        client: &ClientId,
        fresh: bool,
    ) -> Option<String> {
        let mut slots = self.slots();
        let id = pick_finished(&slots, conn, own, client, fresh)?;
        slots.remove(&id).map(|s| s.key)
    }

    /// `conn` closed: an upload it was receiving is dead (its key returned, to delete);
    /// one awaiting its verdict waits for another connection of its client.
    pub fn release(&self, conn: ConnId) -> Vec<String> {
        let mut slots = self.slots();
        let mut dead = Vec::new();
        slots.retain(|_, s| {
            if s.owner != Some(conn) {
                return true;
            }
            if matches!(s.state, State::Receiving) {
                dead.push(s.key.clone());
                return false;
            }
            s.owner = None;
            s.since = Instant::now();
            true
        });
        dead
    }

    /// Removes uploads no connection has held for `after`.
    pub fn expire(&self, after: Duration, now: Instant) -> Vec<Abandoned> {
        let mut slots = self.slots();
        let mut gone = Vec::new();
        slots.retain(|_, s| {
            let idle = now.saturating_duration_since(s.since);
            if s.owner.is_none() && idle >= after {
                gone.push(Abandoned {
                    client: s.client,
                    key: s.key.clone(),
                    idle,
                });
                return false;
            }
            true
        });
        gone
    }

    /// Removes every upload (the server stops); their keys, to delete.
    pub fn drain(&self) -> Vec<String> {
        self.slots().drain().map(|(_, s)| s.key).collect()
    }

    /// How many uploads are in progress.
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn pick_finished(
    slots: &HashMap<UploadId, Slot>,
    conn: ConnId,
    own: Option<UploadId>,
    client: &ClientId,
    fresh: bool,
) -> Option<UploadId> {
    let finished = |s: &Slot| s.client == *client && matches!(s.state, State::Finished { .. });
    if let Some(id) = own {
        if slots
            .get(&id)
            .is_some_and(|s| finished(s) && s.owner == Some(conn))
        {
            return Some(id);
        }
    }
    let only = |keep: &dyn Fn(&Slot) -> bool| {
        let mut ids = slots
            .iter()
            .filter(|(_, s)| finished(s) && keep(s))
            .map(|(id, _)| *id);
        match (ids.next(), ids.next()) {
            (Some(id), None) => Some(id),
            _ => None,
        }
    };
    only(&|s| s.owner.is_none()).or_else(|| if fresh { only(&|_| true) } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: ClientId = ClientId([1; 16]);

    #[test]
    fn a_verdict_takes_the_upload_of_its_own_connection() {
        let t = Uploads::default();
        let one = t.start(1, C, "f.txt".into(), "uploads/one".into());
        let two = t.start(2, C, "f.txt".into(), "uploads/two".into());
        assert!(t.finish(two, 20, 2));
        assert!(t.finish(one, 10, 1));
        let v = t.take_for_verdict(1, Some(one), &C, false).unwrap();
        assert_eq!((v.key.as_str(), v.size, v.checksum), ("uploads/one", 10, 1));
        let v = t.take_for_verdict(2, Some(two), &C, false).unwrap();
        assert_eq!(v.key, "uploads/two");
        assert!(t.is_empty());
    }

    #[test]
    fn a_verdict_without_an_upload_of_its_own_takes_nothing_held_elsewhere() {
        let t = Uploads::default();
        let one = t.start(1, C, "f.txt".into(), "uploads/one".into());
        t.finish(one, 10, 1);
        // A connection that sent other requests before its 900: never another's upload.
        assert!(t.take_for_verdict(2, None, &C, false).is_none());
        // Two finished uploads: a fresh connection cannot tell which.
        let two = t.start(3, C, "g.txt".into(), "uploads/two".into());
        t.finish(two, 5, 5);
        assert!(t.take_for_verdict(4, None, &C, true).is_none());
        // Its connection gone, the one orphan is the client's (connection per request).
        t.release(1);
        let v = t.take_for_verdict(4, None, &C, true).unwrap();
        assert_eq!(v.key, "uploads/one");
    }
}
