//! The MySQL parser on real traffic: a private MariaDB server answering the `mariadb` client
//! (text protocol: queries, result sets, errors, multi-result statements) through a recording
//! proxy; counted exactly. (The binary protocol, COM_STMT_PREPARE/EXECUTE, is covered by
//! byte-exact unit tests: no installable client here speaks it.)
//!
//! `cargo test -p tapline-receivers --test protocols_mysql` as root. Needs
//! `apt-get install mariadb-server mariadb-client`.

mod peers;
mod protocols_util;

use peers::{mariadb, mariadb_client as client};
use protocols_util::*;
use tapline_protocols::{Protocol, Status};

#[test]
fn mariadb_client_queries_count_exactly() {
    const N: usize = 300;
    let maria = mariadb();
    client(maria.port, "CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(64), blob_col LONGTEXT)");
    let proxy = Proxy::start(format!("127.0.0.1:{}", maria.port).parse().unwrap());
    let mut script = String::new();
    for i in 0..N {
        script.push_str(&format!(
            "INSERT INTO shop.items VALUES ({i}, 'secret-{i}', NULL);\n"
        ));
        script.push_str(&format!(
            "SELECT id, name FROM shop.items WHERE id = {i};\n"
        ));
    }
    script.push_str("SELECT * FROM shop.missing;\n"); // 1146
    script.push_str("INSERT INTO shop.items VALUES (0, 'dup', NULL);\n"); // 1062
    script.push_str("UPDATE shop.items SET blob_col = REPEAT('x', 200000) WHERE id < 3;\n");
    script.push_str("SELECT blob_col FROM shop.items WHERE id < 3 ORDER BY id;\n");
    script.push_str("SELECT COUNT(*) FROM shop.items;\n");
    let text = client(proxy.port, &script);
    assert!(text.contains("1146") && text.contains("1062"), "{text}");
    let reads = proxy.finish();
    let (ops, protocols) = replay_sessions(&reads, 0, 256, true);
    assert!(
        protocols.values().all(|p| *p == Some(Protocol::Mysql)),
        "{protocols:?}"
    );
    let t = tally(&ops);
    let key = |n: &str, tb: Option<&str>, e: Option<&str>| {
        (n.to_string(), tb.map(str::to_string), e.map(str::to_string))
    };
    assert_eq!(
        t.get(&key("INSERT", Some("shop.items"), None)),
        Some(&N),
        "{t:#?}"
    );
    assert_eq!(
        t.get(&key("SELECT", Some("shop.items"), None)),
        Some(&(N + 2)),
        "{t:#?}"
    );
    assert_eq!(
        t.get(&key("SELECT", Some("shop.missing"), Some("1146"))),
        Some(&1),
        "{t:#?}"
    );
    assert_eq!(
        t.get(&key("INSERT", Some("shop.items"), Some("1062"))),
        Some(&1),
        "{t:#?}"
    );
    assert_eq!(
        t.get(&key("UPDATE", Some("shop.items"), None)),
        Some(&1),
        "{t:#?}"
    );
    assert!(
        ops.iter()
            .all(|o| o.end_ns >= o.start_ns && o.status != Status::Unknown),
        "{t:#?}"
    );
    assert!(ops
        .iter()
        .all(|o| !o.query_text.as_deref().unwrap_or("").contains("secret")));
    let big = ops
        .iter()
        .find(|o| {
            o.query_text.as_deref()
                == Some("SELECT blob_col FROM shop.items WHERE id < ? ORDER BY id;")
                || o.query_text.as_deref()
                    == Some("SELECT blob_col FROM shop.items WHERE id < ? ORDER BY id")
        })
        .expect("the blob select");
    assert!(
        big.response_size > 600_000,
        "three 200 kB values: {}",
        big.response_size
    );
    // the select that follows it is still matched to its own reply
    let last = ops.iter().rev().find(|o| o.name == "SELECT").unwrap();
    assert!(last.response_size < 1000);
}
