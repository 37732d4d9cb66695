# summary: Prometheus exporter: one scrape of 100,000 series (8.6 MB of text), timed from tapline over loopback and by a real Prometheus (scrape_duration_seconds); the test also checks every value arrived
# needs: prometheus
# usage: (none; the same in --quick: it takes seconds)
need_tools prometheus
(cd "$ROOT" && cargo test -q --release --workspace --test prometheus a_scrape_of_100k_series_completes -- --exact --nocapture) 2>&1 |
  tee "$BENCH_DIR/test.log" >&2
python3 - "$BENCH_DIR/test.log" << 'PY' | while IFS=$'\t' read -r fig val unit; do emit "$fig" "$val" "$unit"; done
import re, sys
text = open(sys.argv[1], errors="replace").read()
m = re.search(r"tapline: scrape of (\d+) series \((\d+) bytes\) took ([0-9.]+)(ns|µs|us|ms|s) over loopback", text)
if m:
    v = float(m.group(3)) * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1, "s": 1e3}[m.group(4)]
    print(f"GET /metrics of {m.group(1)} series from tapline over loopback\t{v:.1f}\tms")
m = re.search(r"prometheus: scrape of \S+ series took ([0-9.]+)s", text)
if m:
    print(f"Prometheus scrape_duration_seconds for the same target\t{float(m.group(1)) * 1000:.0f}\tms")
PY
