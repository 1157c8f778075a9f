//! The table of uploads in progress kept in this process: one server (the default).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protocol_core::crypto::AesKey;
use protocol_core::{ClientId, SuspendedUpload};

use crate::storage::uploads::{
    Abandoned, ConnId, Drained, Handover, Resumed, TableError, UploadId, UploadTable, VerdictFrom,
    Verdictable,
};

enum State {
    /// Packets are arriving on the owning connection.
    Receiving,
    /// Between packets, no connection holds it (a connection per request).
    Suspended(SuspendedUpload),
    /// 1603 sent at `at`; waiting for 900/901/902.
    Finished {
        size: u64,
        checksum: u32,
        handover: Handover,
        at: Instant,
    },
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

/// Every upload in progress of this server, in memory: nothing survives a restart.
#[derive(Default)]
pub struct MemoryUploads {
    slots: Mutex<HashMap<UploadId, Slot>>,
    next: Mutex<UploadId>,
}

impl MemoryUploads {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<UploadId, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl UploadTable for MemoryUploads {
    fn start(
        &self,
        conn: ConnId,
        client: ClientId,
        file_name: &str,
        key: &str,
    ) -> Result<UploadId, TableError> {
        let id = {
            let mut n = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        self.slots().insert(
            id,
            Slot {
                client,
                file_name: file_name.to_string(),
                key: key.to_string(),
                owner: Some(conn),
                state: State::Receiving,
                since: Instant::now(),
            },
        );
        Ok(id)
    }

    fn supersede(
        &self,
        client: &ClientId,
        file_name: &str,
        per_request: bool,
    ) -> Result<Vec<String>, TableError> {
        let mut slots = self.slots();
        let mut gone = Vec::new();
        slots.retain(|_, s| {
            let stale = s.client == *client
                && s.file_name == file_name
                && s.owner.is_none()
                && matches!(&s.state, State::Suspended(u)
                    if u.every_packet_answered() == per_request);
            if stale {
                gone.push(s.key.clone());
            }
            !stale
        });
        Ok(gone)
    }

    fn finish(
        &self,
        id: UploadId,
        size: u64,
        checksum: u32,
        handover: Handover,
    ) -> Result<bool, TableError> {
        Ok(match self.slots().get_mut(&id) {
            Some(s) => {
                s.state = State::Finished {
                    size,
                    checksum,
                    handover,
                    at: Instant::now(),
                };
                true
            }
            None => false,
        })
    }

    fn suspend(&self, id: UploadId, upload: SuspendedUpload) -> Result<(), TableError> {
        if let Some(s) = self.slots().get_mut(&id) {
            s.state = State::Suspended(upload);
            s.owner = None;
            s.since = Instant::now();
        }
        Ok(())
    }

    fn resume(
        &self,
        conn: ConnId,
        client: &ClientId,
        _key: &AesKey,
    ) -> Result<Option<Resumed>, TableError> {
        let mut slots = self.slots();
        let sending_elsewhere = slots.values().any(|s| {
            s.client == *client && matches!(s.state, State::Receiving) && s.owner != Some(conn)
        });
        let mut suspended = slots
            .iter()
            .filter(|(_, s)| s.client == *client && matches!(s.state, State::Suspended(_)))
            .map(|(id, _)| *id);
        let (Some(id), None) = (suspended.next(), suspended.next()) else {
            return Ok(None);
        };
        if sending_elsewhere {
            return Ok(None);
        }
        let Some(slot) = slots.get_mut(&id) else {
            return Ok(None);
        };
        let State::Suspended(upload) = std::mem::replace(&mut slot.state, State::Receiving) else {
            return Ok(None);
        };
        slot.owner = Some(conn);
        Ok(Some(Resumed {
            id,
            key: slot.key.clone(),
            upload,
        }))
    }

    fn take_for_verdict(
        &self,
        from: VerdictFrom,
        client: &ClientId,
    ) -> Result<Option<Verdictable>, TableError> {
        let mut slots = self.slots();
        let Some(slot) = pick_finished(&slots, from, client).and_then(|id| slots.remove(&id))
        else {
            return Ok(None);
        };
        let State::Finished { size, checksum, .. } = slot.state else {
            return Ok(None);
        };
        Ok(Some(Verdictable {
            file_name: slot.file_name,
            key: slot.key,
            size,
            checksum,
        }))
    }

    fn remove(&self, id: UploadId) -> Result<Option<String>, TableError> {
        Ok(self.slots().remove(&id).map(|s| s.key))
    }

    fn remove_for_retry(
        &self,
        from: VerdictFrom,
        client: &ClientId,
    ) -> Result<Option<String>, TableError> {
        let mut slots = self.slots();
        Ok(pick_finished(&slots, from, client)
            .and_then(|id| slots.remove(&id))
            .map(|s| s.key))
    }

    fn release(&self, conn: ConnId) -> Result<Vec<String>, TableError> {
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
        Ok(dead)
    }

    fn expire(&self, after: Duration, now: Instant) -> Result<Vec<Abandoned>, TableError> {
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
        Ok(gone)
    }

    fn drain(&self) -> Result<Vec<Drained>, TableError> {
        let mut slots = self.slots();
        let drained = slots.drain().map(|(_, s)| Drained {
            client: s.client,
            bytes: match &s.state {
                State::Receiving => None,
                State::Suspended(upload) => Some(upload.bytes_so_far()),
                State::Finished { size, .. } => Some(*size),
            },
            key: s.key,
        });
        Ok(drained.collect())
    }

    fn enforce_quota(&self, client: &ClientId, quota: u64) -> Result<Vec<Abandoned>, TableError> {
        let held = |s: &Slot| match &s.state {
            State::Receiving => 0,
            State::Suspended(upload) => upload.bytes_so_far(),
            State::Finished { size, .. } => *size,
        };
        let mut slots = self.slots();
        let mut total = slots
            .values()
            .filter(|s| s.client == *client)
            .fold(0u64, |sum, s| sum.saturating_add(held(s)));
        let mut gone = Vec::new();
        while total > quota {
            let oldest = slots
                .iter()
                .filter(|(_, s)| s.client == *client && s.owner.is_none())
                .min_by_key(|(id, s)| (s.since, **id))
                .map(|(id, _)| *id);
            let Some(slot) = oldest.and_then(|id| slots.remove(&id)) else {
                break;
            };
            total = total.saturating_sub(held(&slot));
            gone.push(Abandoned {
                client: slot.client,
                idle: slot.since.elapsed(),
                key: slot.key,
            });
        }
        Ok(gone)
    }

    fn keys(&self) -> Result<Vec<String>, TableError> {
        Ok(self.slots().values().map(|s| s.key.clone()).collect())
    }

    fn len(&self) -> usize {
        self.slots().len()
    }
}

/// The rules of [`UploadTable::take_for_verdict`].
fn pick_finished(
    slots: &HashMap<UploadId, Slot>,
    from: VerdictFrom,
    client: &ClientId,
) -> Option<UploadId> {
    if let Some(id) = from.own {
        let own = slots.get(&id).is_some_and(|s| {
            s.client == *client
                && matches!(s.state, State::Finished { .. })
                && s.owner == Some(from.conn)
        });
        if own {
            return Some(id);
        }
    }
    if !from.fresh {
        return None;
    }
    let (id, handover, at) = slots
        .iter()
        .filter(|(_, s)| s.client == *client)
        .filter_map(|(id, s)| match s.state {
            State::Finished { handover, at, .. } => Some((*id, handover, at)),
            _ => None,
        })
        .max_by_key(|(id, _, at)| (*at, *id))?;
    let recent = Instant::now().saturating_duration_since(at) < from.window;
    (handover == Handover::AnyConnection && recent).then_some(id)
}
