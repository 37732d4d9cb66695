//! A small SQL tokenizer: the statement's operation (`db.operation.name`), its main table
//! (`db.collection.name`), and the query text with every literal replaced by `?`.
//!
//! It works on whatever prefix of the query was captured: an unterminated string at the end is
//! a literal like any other. It never allocates more than the input's size.

/// SQL dialect differences that matter for literals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `"x"` is an identifier; `$1` parameters; `$tag$...$tag$` strings; `E'\n'` escapes.
    Postgres,
    /// `"x"` is a string (unless ANSI_QUOTES), backslash escapes, `#` comments, `` `x` ``.
    Mysql,
}

/// What a statement is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub operation: Option<&'static str>,
    /// The first table named after FROM/INTO/UPDATE/JOIN/TABLE, as written (quotes removed).
    pub table: Option<String>,
}

const MAX_TABLE: usize = 128;

/// Statement keywords reported as `db.operation.name`; anything else is not reported (keeps the
/// attribute's cardinality bounded).
const OPERATIONS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "REPLACE",
    "UPSERT",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "SET",
    "SHOW",
    "EXPLAIN",
    "CALL",
    "EXEC",
    "EXECUTE",
    "GRANT",
    "REVOKE",
    "LOCK",
    "UNLOCK",
    "COPY",
    "VACUUM",
    "ANALYZE",
    "PREPARE",
    "DEALLOCATE",
    "USE",
    "DO",
    "LISTEN",
    "NOTIFY",
    "UNLISTEN",
    "DECLARE",
    "FETCH",
    "CLOSE",
    "DISCARD",
    "RESET",
    "REFRESH",
    "COMMENT",
    "DESCRIBE",
    "DESC",
    "HANDLER",
    "LOAD",
    "OPTIMIZE",
    "RENAME",
    "CHECKPOINT",
    "CLUSTER",
    "REINDEX",
    "VALUES",
    "TABLE",
    "WITH",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Word,
    /// `"x"` (Postgres) or `` `x` `` (MySQL): text without the quotes.
    QuotedIdent,
    Str,
    Number,
    /// `$1`, `?`, `:name`
    Param,
    Punct(u8),
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    dialect: Dialect,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a [u8], dialect: Dialect) -> Self {
        Lexer { s, i: 0, dialect }
    }

    /// The next token and its text (for quoted identifiers, without quotes).
    fn next(&mut self) -> Option<(Tok, &'a [u8])> {
        let s = self.s;
        loop {
            while self.i < s.len() && s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
            if self.i >= s.len() {
                return None;
            }
            let rest = &s[self.i..];
            if rest.starts_with(b"--") || (self.dialect == Dialect::Mysql && rest[0] == b'#') {
                self.i += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                continue;
            }
            if rest.starts_with(b"/*") {
                self.i += rest[2..]
                    .windows(2)
                    .position(|w| w == b"*/")
                    .map(|p| p + 4)
                    .unwrap_or(rest.len());
                continue;
            }
            break;
        }
        let start = self.i;
        let c = s[start];
        let tok = match c {
            b'\'' => {
                self.i = end_of_quoted(s, start + 1, b'\'', self.backslash_escapes(start));
                Tok::Str
            }
            b'"' if self.dialect == Dialect::Mysql => {
                self.i = end_of_quoted(s, start + 1, b'"', true);
                Tok::Str
            }
            b'"' | b'`' => {
                self.i = end_of_quoted(s, start + 1, c, false);
                let inner_end = if self.i > start + 1 && s[self.i - 1] == c {
                    self.i - 1
                } else {
                    self.i
                };
                return Some((Tok::QuotedIdent, &s[start + 1..inner_end.max(start + 1)]));
            }
            b'0'..=b'9' => {
                self.i = end_of_number(s, start);
                Tok::Number
            }
            b'.' if s.get(start + 1).is_some_and(u8::is_ascii_digit) => {
                self.i = end_of_number(s, start);
                Tok::Number
            }
            b'$' if self.dialect == Dialect::Postgres => {
                let digits = s[start + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits > 0 {
                    self.i = start + 1 + digits;
                    Tok::Param
                } else if let Some(end) = dollar_quoted(s, start) {
                    self.i = end;
                    Tok::Str
                } else {
                    self.i = start + 1;
                    Tok::Punct(c)
                }
            }
            b'?' => {
                self.i = start + 1;
                Tok::Param
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let n = s[start..]
                    .iter()
                    .take_while(|&&b| {
                        b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
                    })
                    .count();
                self.i = start + n;
                // E'..', B'..', X'..', N'..' prefixed strings
                if n == 1
                    && s.get(self.i) == Some(&b'\'')
                    && matches!(c | 0x20, b'e' | b'b' | b'x' | b'n')
                {
                    let esc = c | 0x20 == b'e' || self.dialect == Dialect::Mysql;
                    self.i = end_of_quoted(s, self.i + 1, b'\'', esc);
                    Tok::Str
                } else {
                    Tok::Word
                }
            }
            _ => {
                self.i = start + 1;
                Tok::Punct(c)
            }
        };
        Some((tok, &s[start..self.i]))
    }

    fn backslash_escapes(&self, _quote_at: usize) -> bool {
        self.dialect == Dialect::Mysql
    }
}

/// Index just past the closing quote (doubled quotes and, optionally, backslashes escape).
fn end_of_quoted(s: &[u8], mut i: usize, q: u8, backslash: bool) -> usize {
    while i < s.len() {
        let b = s[i];
        if backslash && b == b'\\' {
            i += 2;
            continue;
        }
        if b == q {
            if s.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    s.len()
}

fn end_of_number(s: &[u8], start: usize) -> usize {
    let mut i = start;
    if s[i..].len() > 2 && s[i] == b'0' && (s[i + 1] | 0x20) == b'x' {
        i += 2;
        while i < s.len() && s[i].is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    while i < s.len() && (s[i].is_ascii_digit() || s[i] == b'.' || s[i] == b'_') {
        i += 1;
    }
    if i < s.len() && (s[i] | 0x20) == b'e' {
        let mut j = i + 1;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        if j < s.len() && s[j].is_ascii_digit() {
            i = j;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

/// `$tag$ ... $tag$`: index past the closing tag, None if `s[start..]` is not a dollar quote.
fn dollar_quoted(s: &[u8], start: usize) -> Option<usize> {
    let tag_len = s[start + 1..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    let tag_end = start + 1 + tag_len;
    if s.get(tag_end) != Some(&b'$') {
        return None;
    }
    let tag = &s[start..=tag_end];
    let body = tag_end + 1;
    Some(match s[body..].windows(tag.len()).position(|w| w == tag) {
        Some(p) => body + p + tag.len(),
        None => s.len(),
    })
}

fn upper_eq(word: &[u8], kw: &str) -> bool {
    word.eq_ignore_ascii_case(kw.as_bytes())
}

fn as_operation(word: &[u8]) -> Option<&'static str> {
    OPERATIONS.iter().copied().find(|k| upper_eq(word, k))
}

/// Operation and main table of the first statement in `sql`.
pub fn summarize(sql: &[u8], dialect: Dialect) -> Summary {
    let mut lx = Lexer::new(sql, dialect);
    let mut summary = Summary::default();
    // leading parentheses: `(SELECT ...) UNION ...`
    let first = loop {
        match lx.next() {
            Some((Tok::Punct(b'('), _)) => continue,
            Some((Tok::Word, w)) => break w,
            _ => return summary,
        }
    };
    let mut op = as_operation(first);
    if op == Some("DESC") {
        op = Some("DESCRIBE");
    }
    summary.operation = op;
    let Some(op) = op else { return summary };

    // which keyword introduces the table for this operation
    let mut depth = 0i32;
    let mut want_table = matches!(op, "UPDATE" | "TRUNCATE" | "TABLE" | "DESCRIBE" | "LOCK");
    let mut after_with = op == "WITH";
    let mut prev_word: &[u8] = first;
    while let Some((tok, text)) = lx.next() {
        match tok {
            Tok::Punct(b'(') => depth += 1,
            Tok::Punct(b')') => depth -= 1,
            Tok::Punct(b';') if depth <= 0 => break,
            Tok::Word => {
                if after_with && depth == 0 {
                    if let Some(main @ ("SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE")) =
                        as_operation(text)
                    {
                        summary.operation = Some(main);
                        after_with = false;
                        want_table = main == "UPDATE";
                        prev_word = text;
                        continue;
                    }
                }
                if want_table {
                    if is_table_noise(text) {
                        prev_word = text;
                        continue;
                    }
                    summary.table = Some(qualified(text, &mut lx));
                    return summary;
                }
                let introduces = ["FROM", "INTO", "JOIN", "TABLE", "UPDATE"].iter().any(|k| upper_eq(text, k))
                    // `DELETE t FROM ...` / `SELECT ... FROM`: but not `IS DISTINCT FROM`
                    && !upper_eq(prev_word, "DISTINCT");
                if introduces && !after_with && (depth == 0 || summary.table.is_none()) {
                    want_table = true;
                }
                prev_word = text;
            }
            Tok::QuotedIdent if want_table => {
                summary.table = Some(qualified(text, &mut lx));
                return summary;
            }
            _ => {}
        }
        if want_table && tok == Tok::Punct(b'(') {
            // FROM (subquery): the table is inside it
            want_table = false;
        }
    }
    summary
}

/// Words that may sit between the keyword and the table name.
fn is_table_noise(w: &[u8]) -> bool {
    [
        "ONLY",
        "IF",
        "NOT",
        "EXISTS",
        "LATERAL",
        "IGNORE",
        "LOW_PRIORITY",
        "DELAYED",
        "HIGH_PRIORITY",
        "QUICK",
        "TEMPORARY",
        "TEMP",
        "UNLOGGED",
        "TABLE",
        "INTO",
        "FROM",
    ]
    .iter()
    .any(|k| upper_eq(w, k))
}

/// `schema.table` from the first name part and what follows it.
fn qualified(first: &[u8], lx: &mut Lexer<'_>) -> String {
    let mut name = String::new();
    push_name(&mut name, first);
    loop {
        let save = lx.i;
        match lx.next() {
            Some((Tok::Punct(b'.'), _)) => match lx.next() {
                Some((Tok::Word | Tok::QuotedIdent, part)) => {
                    name.push('.');
                    push_name(&mut name, part);
                }
                _ => break,
            },
            _ => {
                lx.i = save;
                break;
            }
        }
    }
    name
}

fn push_name(out: &mut String, part: &[u8]) {
    for &b in part {
        if out.len() >= MAX_TABLE {
            return;
        }
        out.push(if b.is_ascii_graphic() { b as char } else { '?' });
    }
}

/// The query text with every literal (strings, numbers) replaced by `?`, comments dropped and
/// whitespace collapsed, at most `max` bytes.
pub fn sanitize(sql: &[u8], dialect: Dialect, max: usize) -> String {
    let mut out = String::with_capacity(sql.len().min(max));
    let mut lx = Lexer::new(sql, dialect);
    let mut prev: Option<Tok> = None;
    // where a sign that may belong to the next number starts in `out`
    let mut sign_at: Option<usize> = None;
    while let Some((tok, text)) = lx.next() {
        if tok == Tok::Number {
            if let Some(at) = sign_at.take() {
                // `= -5`, `+ -1234`: the sign is part of the literal
                out.truncate(at);
                if at > 0 {
                    out.push(' ');
                }
                out.push('?');
                prev = Some(tok);
                continue;
            }
        }
        sign_at = match tok {
            Tok::Punct(b'-' | b'+')
                if matches!(
                    prev,
                    None | Some(Tok::Punct(
                        b'=' | b'<' | b'>' | b'(' | b',' | b'+' | b'-' | b'*' | b'/'
                    ))
                ) =>
            {
                Some(out.len())
            }
            _ => None,
        };
        let space = !matches!(
            (prev, tok),
            (None, _)
                | (_, Tok::Punct(b',' | b')' | b';' | b'.'))
                | (Some(Tok::Punct(b'(' | b'.')), _)
        );
        let piece_len = match tok {
            Tok::Str | Tok::Number => 1,
            Tok::QuotedIdent => text.len() + 2,
            _ => text.len(),
        } + space as usize;
        if out.len() + piece_len > max {
            break;
        }
        if space {
            out.push(' ');
        }
        match tok {
            Tok::Str | Tok::Number => out.push('?'),
            Tok::QuotedIdent => {
                let q = if dialect == Dialect::Mysql { '`' } else { '"' };
                out.push(q);
                out.push_str(&String::from_utf8_lossy(text));
                out.push(q);
            }
            _ => out.push_str(&String::from_utf8_lossy(text)),
        }
        prev = Some(tok);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(s: &str) -> (Option<&'static str>, Option<String>) {
        let x = summarize(s.as_bytes(), Dialect::Postgres);
        (x.operation, x.table)
    }

    #[test]
    fn operations_and_tables() {
        assert_eq!(
            sum("SELECT abalance FROM pgbench_accounts WHERE aid = $1;"),
            (Some("SELECT"), Some("pgbench_accounts".into()))
        );
        assert_eq!(
            sum("update pgbench_tellers SET tbalance = tbalance + 1"),
            (Some("UPDATE"), Some("pgbench_tellers".into()))
        );
        assert_eq!(
            sum("INSERT INTO public.\"Users\" (a) VALUES (1)"),
            (Some("INSERT"), Some("public.Users".into()))
        );
        assert_eq!(
            sum("DELETE FROM ONLY t1 WHERE x = 1"),
            (Some("DELETE"), Some("t1".into()))
        );
        assert_eq!(
            sum("select * from (select 1 from inner_t) s"),
            (Some("SELECT"), Some("inner_t".into()))
        );
        assert_eq!(
            sum("SELECT a FROM t1 JOIN t2 ON t1.x = t2.x"),
            (Some("SELECT"), Some("t1".into()))
        );
        assert_eq!(
            sum("WITH x AS (SELECT 1 FROM a) UPDATE b SET c = 1"),
            (Some("UPDATE"), Some("b".into()))
        );
        assert_eq!(
            sum("CREATE TABLE IF NOT EXISTS s.t (a int)"),
            (Some("CREATE"), Some("s.t".into()))
        );
        assert_eq!(sum("  /* hi */ BEGIN"), (Some("BEGIN"), None));
        assert_eq!(sum("SELECT 1"), (Some("SELECT"), None));
        assert_eq!(
            sum("SELECT a IS DISTINCT FROM b FROM t"),
            (Some("SELECT"), Some("t".into()))
        );
        assert_eq!(sum("frobnicate the db"), (None, None));
        assert_eq!(sum(""), (None, None));
        let m = summarize(b"SELECT * FROM `db`.`tbl` WHERE a = \"x\"", Dialect::Mysql);
        assert_eq!(m.table.as_deref(), Some("db.tbl"));
    }

    #[test]
    fn literals_become_placeholders() {
        let s = |q: &str| sanitize(q.as_bytes(), Dialect::Postgres, 1000);
        assert_eq!(
            s("SELECT * FROM t WHERE name = 'O''Brien' AND age > 42.5e3"),
            "SELECT * FROM t WHERE name = ? AND age > ?"
        );
        assert_eq!(
            s("select $1, $$secret$$, $a$x$a$, E'\\n', x'ff' -- comment 'no'\n from t"),
            "select $1, ?, ?, ?, ? from t"
        );
        assert_eq!(
            s("INSERT INTO t VALUES (1, -2, 'abc"),
            "INSERT INTO t VALUES (?, ?, ?"
        );
        assert_eq!(
            s("SELECT \"col\" FROM t1 WHERE id IN (1,2)"),
            "SELECT \"col\" FROM t1 WHERE id IN (?, ?)"
        );
        let m = sanitize(
            b"SELECT * FROM u WHERE n = \"bob\" AND p = 'a\\'b' # tail",
            Dialect::Mysql,
            1000,
        );
        assert_eq!(m, "SELECT * FROM u WHERE n = ? AND p = ?");
        assert!(sanitize(b"SELECT 1, 2, 3, 4", Dialect::Mysql, 10).len() <= 10);
        assert_eq!(
            s("UPDATE a SET b = b + -12 WHERE c = -3 AND d = e - 4"),
            "UPDATE a SET b = b + ? WHERE c = ? AND d = e - ?"
        );
        // no literal survives, whatever the bytes
        assert!(!s("SELECT 'secret', 12345 FROM t").contains("secret"));
        assert!(!s("SELECT 'secret', 12345 FROM t").contains("12345"));
    }
}
