# summary: memory of the Kubernetes metadata cache with 10,000 pods, 3,000 ReplicaSets, 1,000 services and 100 nodes (counting allocator; the test fails above 50 MiB)
# needs: nothing
# usage: (none; the same in --quick: it takes seconds)
(cd "$ROOT" && cargo test -q --release --workspace --test k8s_memory -- --nocapture) 2>&1 | tee "$BENCH_DIR/test.log" >&2
v=$(sed -n 's/^k8s cache: .*: \([0-9]*\) bytes = .*/\1/p' "$BENCH_DIR/test.log" | head -1)
[[ -n $v ]] || die "the test printed no 'k8s cache: ... bytes' line"
emit "Kubernetes cache, 10,000 pods and their owners, services, nodes" "$(calc "$v / 1048576")" "MiB"
