//! Maps config paths (`receivers.flows.interfaces`) to the file and line that set them.
//!
//! figment merges values but forgets where they came from; this index re-reads the block-style
//! YAML that users write so that every error can point at a line. Paths it cannot find (flow
//! style, values set by `--set` or the environment) simply have no location.

use super::diagnostics::Location;

#[derive(Clone, Debug, Default)]
pub struct LocationIndex {
    /// (path, file, line); later files win, so lookups scan from the back.
    entries: Vec<(String, String, usize)>,
}

impl LocationIndex {
    pub fn add_file(&mut self, file: &str, text: &str) {
        // Path segments enclosing the current line, with the indent they were opened at.
        // List items are segments of their own (`[n]`) hanging under their key.
        let mut stack: Vec<(usize, String)> = Vec::new();
        // Next index of the list open at each indent.
        let mut next_item: Vec<(usize, usize)> = Vec::new();
        for (lineno, raw) in text.lines().enumerate() {
            let line = strip_comment(raw);
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with("---") {
                continue;
            }
            let mut indent = line.len() - trimmed.len();
            let mut rest = trimmed;
            if let Some(after) = rest.strip_prefix("- ").or((rest == "-").then_some("")) {
                while stack
                    .last()
                    .is_some_and(|(i, _)| *i >= indent && !is_item_at(stack.last(), indent))
                {
                    stack.pop();
                }
                if is_item_at(stack.last(), indent) {
                    stack.pop();
                }
                next_item.retain(|(i, _)| *i <= indent);
                let n = match next_item.iter_mut().find(|(i, _)| *i == indent) {
                    Some(c) => {
                        c.1 += 1;
                        c.1 - 1
                    }
                    None => {
                        next_item.push((indent, 1));
                        0
                    }
                };
                stack.push((indent, format!("[{n}]")));
                self.entries
                    .push((join(&stack), file.to_string(), lineno + 1));
                indent += 2;
                rest = after;
            } else {
                while stack.last().is_some_and(|(i, _)| *i >= indent) {
                    stack.pop();
                }
                next_item.retain(|(i, _)| *i < indent);
            }
            if let Some(key) = split_key(rest) {
                stack.push((indent, key));
                self.entries
                    .push((join(&stack), file.to_string(), lineno + 1));
            }
        }
    }

    /// The location of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<Location> {
        let mut p = path;
        loop {
            if let Some((_, file, line)) = self.entries.iter().rev().find(|(k, _, _)| k == p) {
                return Some(Location {
                    file: file.clone(),
                    line: *line,
                });
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

fn strip_comment(line: &str) -> &str {
    let mut in_single = false;
    let mut in_double = false;
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single => in_double = !in_double,
            '#' if !in_single && !in_double && (i == 0 || line[..i].ends_with(' ')) => {
                return &line[..i]
            }
            _ => {}
        }
    }
    line
}

fn is_item_at(top: Option<&(usize, String)>, indent: usize) -> bool {
    top.is_some_and(|(i, k)| *i == indent && k.starts_with('['))
}

fn join(stack: &[(usize, String)]) -> String {
    let mut out = String::new();
    for (_, seg) in stack {
        if !out.is_empty() && !seg.starts_with('[') {
            out.push('.');
        }
        out.push_str(seg);
    }
    out
}

/// `key: value` or `key:` → the key (unquoted).
fn split_key(s: &str) -> Option<String> {
    let (key, rest) = if let Some(q) = s.strip_prefix('"') {
        let end = q.find('"')?;
        (q[..end].to_string(), q[end + 1..].trim_start())
    } else if let Some(q) = s.strip_prefix('\'') {
        let end = q.find('\'')?;
        (q[..end].to_string(), q[end + 1..].trim_start())
    } else {
        let colon = s
            .find(": ")
            .or_else(|| s.strip_suffix(':').map(|k| k.len()))?;
        (s[..colon].trim().to_string(), &s[colon..])
    };
    rest.strip_prefix(':')?;
    if key.is_empty() || key.starts_with('{') || key.starts_with('[') {
        return None;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_list_items() {
        let yaml = "\
receivers:
  synthetic:   # comment
    rate: 10
exporters:
  debug: {}
service:
  pipelines:
    metrics:
      receivers: [synthetic]
      exporters:
        - debug
        - nop
";
        let mut idx = LocationIndex::default();
        idx.add_file("a.yaml", yaml);
        let line = |p: &str| idx.find(p).map(|l| l.line);
        assert_eq!(line("receivers.synthetic.rate"), Some(3));
        assert_eq!(line("receivers.synthetic.rate.deeper"), Some(3));
        assert_eq!(line("exporters.debug"), Some(5));
        assert_eq!(line("service.pipelines.metrics.receivers"), Some(9));
        assert_eq!(line("service.pipelines.metrics.exporters[1]"), Some(12));
        assert_eq!(line("nothing"), None);
    }

    #[test]
    fn later_files_win() {
        let mut idx = LocationIndex::default();
        idx.add_file("a.yaml", "x:\n  y: 1\n");
        idx.add_file("b.yaml", "\n\nx:\n  y: 2\n");
        let loc = idx.find("x.y").unwrap();
        assert_eq!((loc.file.as_str(), loc.line), ("b.yaml", 4));
    }
}
