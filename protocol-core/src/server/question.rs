//! Typed tickets: one kind per question, consumed by the answer.
//!
//! A question event ([`ServerEvent::is_question`](super::ServerEvent::is_question))
//! carries a [`Ticket<Q>`] whose type `Q` names the question. Tickets are neither
//! `Copy` nor `Clone`: an answer method takes the ticket by value, so a question is
//! answered once, and only the methods that fit its type accept it. Answering the
//! wrong question does not compile:
//!
//! ```compile_fail
//! # use std::time::Instant;
//! # use bytes::BytesMut;
//! # use protocol_core::{wire, ClientId, FieldString, Request, ServerConfig, ServerConnection, ServerEvent};
//! # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
//! # let now = Instant::now();
//! # let mut conn = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(0), now);
//! # let mut input = BytesMut::new();
//! # wire::encode_request(&mut input, ClientId::ZERO, &Request::Register { name: FieldString::new("a").unwrap() }, Default::default());
//! # conn.handle_input(&mut input, now).unwrap();
//! let Some(ServerEvent::Register { ticket, .. }) = conn.poll_event() else { panic!() };
//! conn.succeed(ticket).unwrap(); // `succeed` does not answer Register
//! ```
//!
//! ```compile_fail
//! # use std::time::Instant;
//! # use bytes::BytesMut;
//! # use protocol_core::{wire, ClientId, FieldString, Request, ServerConfig, ServerConnection, ServerEvent};
//! # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
//! # let now = Instant::now();
//! # let mut conn = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(0), now);
//! # let mut input = BytesMut::new();
//! # wire::encode_request(&mut input, ClientId::ZERO, &Request::Register { name: FieldString::new("a").unwrap() }, Default::default());
//! # conn.handle_input(&mut input, now).unwrap();
//! let Some(ServerEvent::Register { ticket, .. }) = conn.poll_event() else { panic!() };
//! conn.accept_registration(ticket).unwrap();
//! conn.refuse_registration(ticket).unwrap(); // the ticket was used up by the first answer
//! ```

use std::fmt;
use std::marker::PhantomData;

/// Which question a connection is waiting on (see
/// [`ServerConnection::pending_question`](crate::ServerConnection::pending_question)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuestionKind {
    /// [`ServerEvent::Register`](super::ServerEvent::Register).
    Register,
    /// [`ServerEvent::StorePublicKey`](super::ServerEvent::StorePublicKey).
    StorePublicKey,
    /// [`ServerEvent::Reconnect`](super::ServerEvent::Reconnect).
    Reconnect,
    /// [`ServerEvent::StoreAesKey`](super::ServerEvent::StoreAesKey).
    StoreAesKey,
    /// [`ServerEvent::LookupClient`](super::ServerEvent::LookupClient).
    LookupClient,
    /// [`ServerEvent::UploadFinished`](super::ServerEvent::UploadFinished).
    UploadFinished,
    /// [`ServerEvent::Confirm`](super::ServerEvent::Confirm).
    Confirm,
}

mod sealed {
    pub trait Sealed {}
}

/// A question type: the `Q` of a [`Ticket<Q>`]. Every question may be answered with
/// [`fail`](crate::ServerConnection::fail). Implemented only by the types in
/// [`kind`].
pub trait Question: sealed::Sealed {
    /// The question's kind, at run time.
    const KIND: QuestionKind;
}

/// A question answered by [`succeed`](crate::ServerConnection::succeed).
pub trait Succeed: Question {}

/// The question types, one per question event.
pub mod kind {
    use super::{sealed::Sealed, Question, QuestionKind, Succeed};

    macro_rules! question {
        ($(#[$doc:meta])* $name:ident, succeed = $s:tt) => {
            $(#[$doc])*
            #[derive(Debug)]
            pub enum $name {}
            impl Sealed for $name {}
            impl Question for $name {
                const KIND: QuestionKind = QuestionKind::$name;
            }
            question!(@succeed $name $s);
        };
        (@succeed $name:ident yes) => { impl Succeed for $name {} };
        (@succeed $name:ident no) => {};
    }

    question!(
        /// 825: accept or refuse the registration.
        Register, succeed = no);
    question!(
        /// 826: store the public key and AES key.
        StorePublicKey, succeed = yes);
    question!(
        /// 827: look up the stored public key.
        Reconnect, succeed = no);
    question!(
        /// After 827: store the fresh AES key.
        StoreAesKey, succeed = yes);
    question!(
        /// A 828 on a connection without a key: look the client up.
        LookupClient, succeed = no);
    question!(
        /// The last packet arrived: make the upload durable.
        UploadFinished, succeed = yes);
    question!(
        /// 900 or 902: mark the upload verified or not.
        Confirm, succeed = yes);
}

/// Names one question the connection asked; the answer consumes it. `Q` is one of
/// the types in [`kind`]. Tickets can be sent to another task and back (`Send`);
/// they are not `Copy` or `Clone`.
pub struct Ticket<Q> {
    pub(crate) id: u64,
    _q: PhantomData<fn() -> Q>,
}

impl<Q: Question> Ticket<Q> {
    pub(crate) fn new(id: u64) -> Self {
        Ticket {
            id,
            _q: PhantomData,
        }
    }

    /// A number for logs: the connection's count of questions (1 for its first), so
    /// unique within the connection only; an answer is for the connection that asked.
    pub fn get(&self) -> u64 {
        self.id
    }

    /// The question this ticket answers.
    pub fn kind(&self) -> QuestionKind {
        Q::KIND
    }
}

impl<Q: Question> fmt::Debug for Ticket<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ticket<{:?}>({:#x})", Q::KIND, self.id)
    }
}
