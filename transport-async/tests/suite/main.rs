//! One suite for every driver: each case in `cases` is written once, generic over
//! [`drivers::Driver`], and instantiated here for the async driver on tokio, smol
//! and async-std, and for the blocking transport-std (the cases that need an
//! asynchronous application for the async driver only).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod cases;
mod drivers;
mod stalled;
mod tls;

/// A `#[test]` per case for `$driver`.
macro_rules! cases {
    ($driver:ty; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                crate::cases::$case::<$driver>()
            }
        )*
    };
}

/// A `#[test]` per case of secure mode (`tls`) for `$driver`.
macro_rules! tls_cases {
    ($driver:ty; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                crate::tls::$case::<$driver>()
            }
        )*
    };
}

/// Every case that any transport runs.
macro_rules! every_transport {
    ($driver:ty) => {
        tls_cases!($driver;
            a_tls_client_and_a_legacy_client_share_the_port,
            without_tls_a_client_hello_is_answered_as_a_legacy_request,
            a_client_that_stalls_its_handshake_is_closed_at_the_deadline,
            a_broken_client_hello_gets_an_alert_and_the_close,
            behind_a_balancer_the_client_hello_follows_the_proxy_header,
        );
        cases!($driver;
            clients_upload_at_once_while_one_connection_stays_silent,
            a_forgetful_application_ends_the_connection_at_the_answer_deadline,
            no_checksum_is_sent_for_bytes_the_application_never_stored,
            a_silent_server_fails_the_client_at_its_answer_deadline,
            a_server_that_stops_reading_times_the_client_out,
            at_the_cap_an_idle_connection_is_shed_and_if_none_is_idle_the_newcomer_gets_1607,
            shutdown_closes_idle_connections_and_returns,
        );
    };
}

/// The cases of an asynchronous application.
macro_rules! async_only {
    ($driver:ty) => {
        cases!($driver;
            uploads_verify_with_an_application_that_awaits_before_answering,
            an_async_handler_that_never_returns_is_cut_off_at_the_deadline,
        );
    };
}

mod tokio {
    every_transport!(crate::drivers::OnTokio);
    async_only!(crate::drivers::OnTokio);
}

mod smol {
    every_transport!(crate::drivers::OnSmol);
    async_only!(crate::drivers::OnSmol);
}

mod async_std {
    every_transport!(crate::drivers::OnAsyncStd);
    async_only!(crate::drivers::OnAsyncStd);
}

mod std {
    every_transport!(crate::drivers::OnStd);
}
