//! A quota per client on the bytes its unfinished uploads hold: past it, its oldest
//! upload without a connection goes. Without one, a client that starts uploads and
//! leaves them (suspended between packets, or finished and never given a verdict)
//! holds their bytes until they expire (`--abandoned-upload-timeout`).

use protocol_core::ClientId;
use tracing::{info, warn};

use super::{App, Connection};
use crate::storage::short_id;

impl App {
    /// Drops `client`'s oldest uploads without a connection while its unfinished
    /// uploads hold more than [`Policy::upload_quota`](super::Policy::upload_quota).
    fn enforce_upload_quota(&self, client: &ClientId) {
        let quota = self.policy.upload_quota;
        match self.uploads.enforce_quota(client, quota) {
            Ok(gone) => {
                for upload in gone {
                    info!(
                        client = %short_id(&upload.client),
                        idle = ?upload.idle,
                        "upload without a connection dropped: the client's unfinished \
                         uploads held more than its quota of {quota} bytes"
                    );
                    self.storage.drop_upload(&upload.key);
                }
            }
            Err(e) => warn!("cannot check a client's unfinished uploads: {e}"),
        }
    }
}

impl Connection {
    /// After `client`'s unfinished uploads grew (one suspended or finished).
    pub(crate) fn enforce_upload_quota(&self, client: &ClientId) {
        self.app.enforce_upload_quota(client);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::app::{App, Policy};
    use crate::storage::local::LocalContents;
    use crate::storage::memory::MemoryUploads;
    use crate::storage::sqlite::SqliteMetadata;
    use crate::storage::suite::uploads as suite;
    use crate::storage::uploads::{Handover, UploadTable};
    use crate::storage::Storage;
    use protocol_core::ClientId;

    const C: ClientId = ClientId([4; 16]);
    const D: ClientId = ClientId([5; 16]);

    #[test]
    fn past_the_quota_the_oldest_upload_without_a_connection_goes() {
        let dir = tempfile::tempdir().unwrap();
        let meta = SqliteMetadata::open(&dir.path().join("t.db")).unwrap();
        let contents = LocalContents::open(dir.path()).unwrap();
        let table = Arc::new(MemoryUploads::default());
        // C holds 100 + `b` bytes without a connection (and some arriving).
        let b = suite::suspended(C, "b").bytes_so_far();
        let policy = Policy {
            upload_quota: 100 + b,
            ..Policy::default()
        };
        let storage = Storage::new(Arc::new(meta), Arc::new(contents));
        let mut app = App::with_tables(storage, table.clone(), policy).unwrap();
        let key = |n: u32| format!("uploads/{n:032x}");
        for n in 0..4 {
            app.storage.contents.create_upload(&key(n)).unwrap();
        }
        // C: one finished and left (100 bytes), then one suspended (its state's
        // bytes), one still receiving; D: one finished and left, as large.
        let first = table.start(1, C, "a", &key(0)).unwrap();
        table
            .finish(first, 100, 1, Handover::OwnConnection)
            .unwrap();
        table.release(1).unwrap();
        let other = table.start(2, D, "d", &key(1)).unwrap();
        table
            .finish(other, 100, 1, Handover::OwnConnection)
            .unwrap();
        table.release(2).unwrap();
        let upload = suite::suspended(C, "b");
        assert!(
            100 + upload.bytes_so_far() <= 250,
            "the suite's upload is small"
        );
        let second = table.start(3, C, "b", &key(2)).unwrap();
        table.suspend(second, upload).unwrap();
        table.start(4, C, "c", &key(3)).unwrap();

        app.enforce_upload_quota(&C);
        assert_eq!(table.len(), 4, "at the quota nothing goes");

        // (A new App would clear uploads/ as garbage from before a start.)
        app.policy.upload_quota = 100 + b - 1;
        app.enforce_upload_quota(&C);
        // C's oldest left upload went; the others, D's and the one receiving stay.
        assert_eq!(table.len(), 3);
        assert_eq!(table.remove(first).unwrap(), None);
        assert_eq!(table.remove(other).unwrap(), Some(key(1)));
        let uploads = app.storage.contents.uploads().unwrap();
        assert!(
            !uploads.contains(&key(0)),
            "its contents deleted: {uploads:?}"
        );
        assert!(
            uploads.contains(&key(2)) && uploads.contains(&key(3)),
            "{uploads:?}"
        );
    }
}
