//! The MySQL parser on real traffic: a private MariaDB server answering the `mariadb` client
//! (text protocol: queries, result sets, errors, multi-result statements) through a recording
//! proxy; counted exactly. (The binary protocol, COM_STMT_PREPARE/EXECUTE, is covered by
//! byte-exact unit tests: no installable client here speaks it.)
//!
//! `cargo test -p tapline-receivers --test protocols_mysql` as root. Needs
//! `apt-get install mariadb-server mariadb-client`.

mod protocols_util;

use std::process::Command;
use std::time::Duration;

use protocols_util::*;
use tapline_protocols::{Protocol, Status};

struct Maria {
    port: u16,
    _guard: Guard,
    _dir: TempDir,
}

fn start_mariadb() -> Maria {
    let install = need("mariadb-install-db", "apt-get install mariadb-server");
    let server = need("mariadbd", "apt-get install mariadb-server");
    let dir = TempDir::new("maria");
    let data = dir.0.join("data");
    run(
        Command::new(install)
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display())),
        Duration::from_secs(180),
    );
    let port = free_port();
    let child = Command::new(server)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.0.join("sock").display()))
        .arg(format!("--pid-file={}", dir.0.join("pid").display()))
        .args([
            "--user=root",
            "--bind-address=127.0.0.1",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            "--skip-name-resolve",
        ])
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start mariadbd");
    let guard = Guard(child);
    wait_port(port, Duration::from_secs(60));
    Maria {
        port,
        _guard: guard,
        _dir: dir,
    }
}

fn client(port: u16, sql: &str) -> String {
    let bin = need("mariadb", "apt-get install mariadb-client");
    let mut cmd = Command::new(bin);
    cmd.args([
        "--no-defaults",
        "--skip-ssl",
        "-h",
        "127.0.0.1",
        "-u",
        "root",
        "--force",
        "-B",
    ])
    .arg(format!("-P{port}"));
    // the script on stdin, --force: keep going after errors (the output reports them)
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run mariadb");
    let mut stdin = child.stdin.take().unwrap();
    let sql = sql.to_string();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(sql.as_bytes());
    });
    let out = child.wait_with_output().expect("run mariadb");
    let _ = writer.join();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn mariadb_client_queries_count_exactly() {
    const N: usize = 300;
    let maria = start_mariadb();
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
