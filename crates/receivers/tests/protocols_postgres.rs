//! The PostgreSQL parser on real traffic: a private cluster answering pgbench (simple,
//! extended and prepared protocols) and psql, through a recording proxy; counted exactly.
//!
//! `cargo test -p tapline-receivers --test protocols_postgres` as root (the server runs as the
//! `postgres` user). Needs `apt-get install postgresql` (initdb, postgres, pgbench, psql).

mod peers;
mod protocols_util;

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use peers::{pgbench, postgres};
use protocols_util::*;
use tapline_protocols::{Protocol, Status};
use tapline_test_support::process::run;
use tapline_test_support::{need, tempdir};

/// One cluster at a time: the machine is small.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn pgbench_all_protocols_count_exactly() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const T: usize = 150;
    const C: usize = 2;
    let pg = postgres();
    pgbench(pg.port, &["-i", "-q", "-s", "1"]);
    for mode in ["simple", "extended", "prepared"] {
        let proxy = Proxy::start(format!("127.0.0.1:{}", pg.port).parse().unwrap());
        pgbench(
            proxy.port,
            &["-n", "-t", &T.to_string(), "-c", &C.to_string(), "-M", mode],
        );
        let reads = proxy.finish();
        let (ops, protocols) = replay_sessions(&reads, 0, 256, true);
        assert!(
            protocols.values().all(|p| *p == Some(Protocol::Postgres)),
            "{mode}: {protocols:?}"
        );
        let n = T * C;
        for (name, table) in [
            ("UPDATE", Some("pgbench_accounts")),
            ("SELECT", Some("pgbench_accounts")),
            ("UPDATE", Some("pgbench_tellers")),
            ("UPDATE", Some("pgbench_branches")),
            ("INSERT", Some("pgbench_history")),
            ("BEGIN", None),
            ("END", None),
        ] {
            assert_eq!(
                count(&ops, name, table),
                n,
                "{mode} {name} {table:?}: {:#?}",
                tally(&ops)
            );
        }
        assert!(
            ops.iter()
                .all(|o| o.status == Status::Ok && o.error.is_none()),
            "{mode}: {:#?}",
            tally(&ops)
        );
        assert!(ops
            .iter()
            .all(|o| o.end_ns >= o.start_ns && o.request_size > 0 && o.response_size > 0));
        let update = ops
            .iter()
            .find(|o| o.target.as_deref() == Some("pgbench_accounts") && o.name == "UPDATE")
            .unwrap();
        let text = update.query_text.as_deref().unwrap();
        if mode == "simple" {
            // pgbench inlines the values: every literal must be gone
            assert_eq!(
                text,
                "UPDATE pgbench_accounts SET abalance = abalance + ? WHERE aid = ?;"
            );
        } else {
            assert_eq!(
                text,
                "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;"
            );
        }
    }
}

#[test]
fn psql_errors_and_multi_statement_queries() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pg = postgres();
    let psql = need("psql", "apt-get install postgresql-client");
    let proxy = Proxy::start(format!("127.0.0.1:{}", pg.port).parse().unwrap());
    let dir = tempdir("psql");
    let script = dir.path().join("s.sql");
    std::fs::write(
        &script,
        "CREATE TABLE items (id int primary key, name text);\n\
         INSERT INTO items VALUES (1, 'secret-one'), (2, 'two');\n\
         SELECT name FROM items WHERE id = 1;\n\
         SELECT * FROM no_such_table;\n\
         INSERT INTO items VALUES (1, 'dup');\n\
         SELECT repeat('x', 100000) AS big FROM items;\n\
         DROP TABLE items;\n",
    )
    .unwrap();
    run(
        Command::new(psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &proxy.port.to_string(),
                "-U",
                "postgres",
                "-X",
                "-q",
                "-o",
                "/dev/null",
                "-f",
            ])
            .arg(&script)
            .arg("postgres"),
        Duration::from_secs(60),
    );
    let reads = proxy.finish();
    let (ops, _) = replay_sessions(&reads, 0, 256, true);
    let seen: Vec<_> = ops
        .iter()
        .map(|o| {
            (
                o.name.to_string(),
                o.target.as_deref().map(str::to_string),
                o.error.as_deref().map(str::to_string),
            )
        })
        .collect();
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        seen,
        [
            ("CREATE".into(), s("items"), None),
            ("INSERT".into(), s("items"), None),
            ("SELECT".into(), s("items"), None),
            ("SELECT".into(), s("no_such_table"), s("42P01")),
            ("INSERT".into(), s("items"), s("23505")),
            ("SELECT".into(), s("items"), None),
            ("DROP".into(), s("items"), None),
        ]
    );
    assert!(ops
        .iter()
        .all(|o| !o.query_text.as_deref().unwrap_or("").contains("secret")));
    assert!(
        ops[5].response_size > 200_000,
        "two 100 kB rows, skipped by length: {}",
        ops[5].response_size
    );
}
